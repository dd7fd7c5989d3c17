import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startServer, type TestServer, tempDir } from './http.js';

const run = promisify(execFile);

/**
 * A stand-in `ollama` executable (a Node script, CommonJS so it runs from any folder): `--version`,
 * and `serve`, which listens on OLLAMA_HOST and answers /api/version and /api/tags from the
 * manifests under OLLAMA_MODELS the way Ollama does: `manifests/<host>/<ns>/<model>/<tag>`,
 * skipping a model whose config blob is missing or not JSON, named by the shortest display
 * name (`model:tag` for registry.ollama.ai/library, `ns/model:tag`, `host/ns/model:tag`).
 * STANDIN_OLLAMA_HANG=1 makes `serve` never listen, for readiness timeouts.
 */
export function standInOllama(version: string): string {
  return `#!/usr/bin/env node
'use strict';
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');
const VERSION = ${JSON.stringify(version)};
const command = process.argv[2];
if (command === '--version' || command === '-v') {
  process.stdout.write('ollama version is ' + VERSION + '\\n');
  process.exit(0);
}
if (command !== 'serve') {
  process.stderr.write('stand-in ollama: only serve and --version\\n');
  process.exit(2);
}
if (process.env.STANDIN_OLLAMA_HANG === '1') {
  process.stderr.write('stand-in ollama: starting very slowly (pid ' + process.pid + ')\\n');
  setInterval(() => {}, 1000);
} else {
  serve();
}

function serve() {
  const hostEnv = process.env.OLLAMA_HOST || '127.0.0.1:11434';
  const url = new URL(/:\\/\\//.test(hostEnv) ? hostEnv : 'http://' + hostEnv);
  const root = process.env.OLLAMA_MODELS || path.join(os.homedir(), '.ollama', 'models');
  const server = http.createServer((req, res) => {
    const send = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.url === '/api/version') return send(200, { version: VERSION });
    if (req.url === '/api/tags') return send(200, { models: listModels(root) });
    if (req.url === '/') return send(200, 'Ollama is running');
    send(404, { error: 'not found' });
  });
  server.on('error', (error) => {
    process.stderr.write('Error: listen tcp ' + url.host + ': ' + error.code + '\\n');
    process.exit(1);
  });
  server.listen(Number(url.port || 11434), url.hostname.replace(/^\\[|\\]$/g, ''), () => {
    process.stderr.write('Listening on ' + url.host + ' (version ' + VERSION + ')\\n');
  });
  process.on('SIGTERM', () => process.exit(0));
}

function dirs(p) {
  try {
    return fs.readdirSync(p, { withFileTypes: true });
  } catch {
    return [];
  }
}

function listModels(root) {
  const models = [];
  const base = path.join(root, 'manifests');
  for (const host of dirs(base)) for (const ns of dirs(path.join(base, host.name)))
    for (const model of dirs(path.join(base, host.name, ns.name)))
      for (const tag of dirs(path.join(base, host.name, ns.name, model.name))) {
        if (!tag.isFile()) continue;
        const file = path.join(base, host.name, ns.name, model.name, tag.name);
        const bytes = fs.readFileSync(file);
        let manifest;
        try {
          manifest = JSON.parse(bytes.toString('utf8'));
          if (manifest.config && manifest.config.digest) {
            const blob = path.join(root, 'blobs', manifest.config.digest.replace(':', '-'));
            JSON.parse(fs.readFileSync(blob, 'utf8'));
          }
        } catch {
          continue;
        }
        const layers = [manifest.config].concat(manifest.layers || []);
        const size = layers.reduce((n, l) => n + ((l && l.size) || 0), 0);
        const name = shortest(host.name, ns.name, model.name, tag.name);
        const digest = crypto.createHash('sha256').update(bytes).digest('hex');
        models.push({ name, model: name, digest, size, modified_at: fs.statSync(file).mtime.toISOString() });
      }
  return models;
}

function shortest(host, ns, model, tag) {
  if (host.toLowerCase() !== 'registry.ollama.ai') return host + '/' + ns + '/' + model + ':' + tag;
  if (ns.toLowerCase() !== 'library') return ns + '/' + model + ':' + tag;
  return model + ':' + tag;
}
`;
}

export type Layout = 'linux' | 'darwin' | 'windows';

/** Builds a release archive at test time with the real tools (tar + zstd / gzip, zip). */
export async function buildOllamaArchive(
  format: 'tar.zst' | 'tgz' | 'zip',
  version: string,
  layout: Layout,
): Promise<Buffer> {
  const dir = await tempDir('model-pull-archive-');
  try {
    const stage = join(dir.path, 'stage');
    const executable = layout === 'linux' ? 'bin/ollama' : layout === 'darwin' ? 'ollama' : 'ollama.exe';
    await mkdir(join(stage, 'lib', 'ollama'), { recursive: true });
    await mkdir(join(stage, executable, '..'), { recursive: true });
    await writeFile(join(stage, executable), standInOllama(version));
    await chmod(join(stage, executable), 0o755);
    await writeFile(join(stage, 'lib', 'ollama', 'libggml-base.so'), `library of ${version}\n`);
    const top = [executable.split('/')[0]!, 'lib'];
    const out = join(dir.path, `archive.${format}`);
    if (format === 'zip') await run('zip', ['-qr', out, ...top], { cwd: stage });
    else if (format === 'tgz') await run('tar', ['-czf', out, '-C', stage, ...top]);
    else await run('tar', ['--use-compress-program=zstd', '-cf', out, '-C', stage, ...top]);
    return await readFile(out);
  } finally {
    await dir.remove();
  }
}

export interface FakeRelease {
  readonly version: string;
  readonly assets: Readonly<Record<string, Buffer>>;
  /** Replaces the generated sha256sum.txt; null serves none (404). */
  readonly checksums?: string | null;
}

export interface ReleaseServer extends TestServer {
  /** Stands in for https://github.com/ollama/ollama/releases. */
  readonly baseUrl: string;
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** sha256sum.txt as Ollama's release job writes it (`sha256sum` over `find .`). */
export function checksumsFor(assets: Readonly<Record<string, Buffer>>): string {
  return Object.entries(assets)
    .map(([name, bytes]) => `${sha256(bytes)}  ./${name}\n`)
    .join('');
}

/**
 * GitHub's release paths: `/releases/latest` → 302 to `/releases/tag/vX`, and
 * `/releases/download/vX/<asset>` → 302 to a signed CDN URL that serves the bytes.
 */
export async function startReleaseServer(releases: FakeRelease[], latest?: string): Promise<ReleaseServer> {
  const byTag = new Map(releases.map((r) => [`v${r.version}`, r]));
  const server = await startServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === '/releases/latest' && latest) {
      res.writeHead(302, { location: `${server.url}/releases/tag/v${latest}` }).end();
      return;
    }
    const download = /^\/releases\/download\/([^/]+)\/([^/]+)$/.exec(path);
    if (download) {
      // GitHub answers with an absolute URL; @actions/http-client follows only absolute ones.
      res.writeHead(302, { location: `${server.url}/cdn/${download[1]}/${download[2]}?signature=abc` }).end();
      return;
    }
    const cdn = /^\/cdn\/([^/]+)\/([^/]+)$/.exec(path);
    const release = cdn ? byTag.get(cdn[1]!) : undefined;
    const name = cdn?.[2] ?? '';
    let body: Buffer | string | undefined = release?.assets[name];
    if (release && name === 'sha256sum.txt') {
      body =
        release.checksums === undefined ? checksumsFor(release.assets) : (release.checksums ?? undefined);
    }
    if (body === undefined) {
      res.writeHead(404).end('Not Found');
      return;
    }
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
  });
  return Object.assign(server, { baseUrl: `${server.url}/releases` });
}
