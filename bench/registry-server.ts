// The bench server's OCI registry (`--oci FOLDER`): one artifact, read from the folder that
// oci.ts writes (artifact.json: repository, tag, manifest type, the large layer's digest, size
// and /blob query; manifest.json; blobs/<hex> for the small blobs). /v2/ answers 200; manifests
// by tag or digest; small blobs are served directly; the large layer is answered with a 307 to
// /blob?<query> on the same server, as registries send large blobs to a CDN.
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';

export interface Registry {
  readonly repository: string;
  readonly tag: string;
  readonly manifest: Buffer;
  readonly manifestHex: string;
  readonly manifestType: string;
  readonly blobs: ReadonlyMap<string, Buffer>;
  readonly large: { readonly hex: string; readonly size: number; readonly query: string };
}

export async function loadRegistry(dir: string): Promise<Registry> {
  const spec = JSON.parse(await readFile(join(dir, 'artifact.json'), 'utf8')) as {
    repository: string;
    tag: string;
    manifestType: string;
    large: Registry['large'];
  };
  const manifest = await readFile(join(dir, 'manifest.json'));
  const blobs = new Map<string, Buffer>();
  for (const name of await readdir(join(dir, 'blobs')))
    blobs.set(name, await readFile(join(dir, 'blobs', name)));
  const manifestHex = createHash('sha256').update(manifest).digest('hex');
  return { ...spec, manifest, manifestHex, blobs };
}

/** Answers one `/v2/…` request. */
export function serveRegistry(
  registry: Registry,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
): void {
  const head = req.method === 'HEAD';
  if (path === '/v2/') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  const prefix = `/v2/${registry.repository}/`;
  const manifest = path.startsWith(`${prefix}manifests/`)
    ? path.slice(`${prefix}manifests/`.length)
    : undefined;
  if (manifest === registry.tag || manifest === `sha256:${registry.manifestHex}`) {
    res.writeHead(200, {
      'content-type': registry.manifestType,
      'content-length': registry.manifest.length,
      'docker-content-digest': `sha256:${registry.manifestHex}`,
    });
    return void res.end(head ? undefined : registry.manifest);
  }
  const hex = path.startsWith(`${prefix}blobs/sha256:`) ? path.slice(`${prefix}blobs/sha256:`.length) : '';
  if (hex === registry.large.hex) {
    if (head) return void res.writeHead(200, { 'content-length': registry.large.size }).end();
    return void res.writeHead(307, { location: `/blob?${registry.large.query}` }).end();
  }
  const blob = registry.blobs.get(hex);
  if (!blob) return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[]}');
  res.writeHead(200, { 'content-length': blob.length, 'docker-content-digest': `sha256:${hex}` });
  res.end(head ? undefined : blob);
}
