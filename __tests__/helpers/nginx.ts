import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawnDaemon } from './daemon.js';
import { tempDir } from './http.js';
import { freePort, send } from './registry.js';

/** Debian's nginx (the `nginx` package; .ci/run installs it). */
export const NGINX_BINARY = '/usr/sbin/nginx';

export interface NginxBlobCache {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** One entry per request nginx answered: the URI, the status and its cache status (HIT, MISS…). */
  log(): Promise<{ uri: string; status: number; cache: string }[]>;
  close(): Promise<void>;
}

/**
 * nginx on loopback in front of a registry, caching blob GETs by URI with `proxy_cache_lock`: a
 * blob missing from its cache is asked upstream by one request, and every request for it that
 * arrives meanwhile waits for that one instead of adding its own (manifests pass through,
 * uncached, since tags move). The configuration is the one docs/scale-out.md shows.
 */
export async function startNginxBlobCache(upstream: string): Promise<NginxBlobCache> {
  const dir = await tempDir('model-pull-nginx-');
  const port = await freePort();
  // Workers run as nobody when nginx starts as root: they must reach the cache and temp folders.
  await chmod(dir.path, 0o755);
  const work = join(dir.path, 'work');
  await mkdir(work, { mode: 0o777 });
  await chmod(work, 0o777);
  const up = new URL(upstream);
  const config = `
daemon off;
worker_processes 1;
pid ${dir.path}/nginx.pid;
error_log ${dir.path}/error.log warn;
events { worker_connections 512; }
http {
  log_format cache '$uri $status $upstream_cache_status';
  access_log ${dir.path}/access.log cache;
  client_body_temp_path ${work}/client;
  proxy_temp_path ${work}/proxy;
  fastcgi_temp_path ${work}/fastcgi;
  uwsgi_temp_path ${work}/uwsgi;
  scgi_temp_path ${work}/scgi;
  proxy_cache_path ${work}/cache levels=1:2 keys_zone=blobs:1m max_size=1g inactive=7d use_temp_path=off;
  server {
    listen 127.0.0.1:${port};
    client_max_body_size 0;
    location ~ "^/v2/.+/blobs/sha256:[0-9a-f]{64}$" {
      proxy_pass http://${up.host};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache blobs;
      proxy_cache_key $uri;
      proxy_cache_valid 200 7d;
      proxy_force_ranges on;
      proxy_cache_lock on;
      proxy_cache_lock_timeout 1h;
      proxy_cache_lock_age 1h;
    }
    location / {
      proxy_pass http://${up.host};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
`;
  const file = join(dir.path, 'nginx.conf');
  await writeFile(file, config);
  const { child, stderr, close } = spawnDaemon(
    NGINX_BINARY,
    ['-p', dir.path, '-c', file, '-e', join(dir.path, 'error.log')],
    dir,
  );
  const url = `http://127.0.0.1:${port}`;
  const log = async () =>
    (await readFile(join(dir.path, 'access.log'), 'utf8').catch(() => ''))
      .split('\n')
      .filter((l) => l.length > 0)
      .map((l) => {
        const [uri = '', status = '0', cache = '-'] = l.split(' ');
        return { uri, status: Number(status), cache };
      });
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      if ((await send('GET', `${url}/v2/`)).status === 200) return { url, log, close };
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline || child.exitCode !== null) {
      const errors = await readFile(join(dir.path, 'error.log'), 'utf8').catch(() => '');
      await close();
      throw new Error(`nginx did not start: ${stderr().slice(0, 500)} ${errors.slice(0, 500)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
