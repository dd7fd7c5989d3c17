import { join, relative, sep } from 'node:path';
import { readBounded } from '../../download/safe-fs.js';
import { describeError } from '../../errors.js';
import { isLoopbackHost } from '../../http/client.js';
import { MAX_MANIFEST_BYTES } from '../../registry/manifest.js';
import { Checker, type Damage, type VerifyReport, walk } from '../../verify/files.js';
import { parseManifest } from './manifest.js';

export type { Damage, VerifyReport } from '../../verify/files.js';
export { verifyHfCache } from '../hf/verify.js';

/**
 * Re-hashes an Ollama store against its manifests: every manifest under `manifests/` must parse
 * and every blob it names (config included) must be `blobs/sha256-<hex>` with its size and
 * sha256, which is what `ollama run` trusts without checking (docs/layouts.md, "Ollama's store").
 */
export async function verifyOllamaStore(root: string): Promise<VerifyReport> {
  const checker = new Checker();
  const manifests = join(root, 'manifests');
  for (const file of await walk(manifests)) {
    const model = ollamaName(relative(manifests, file));
    const line = ollamaLine(model);
    const read = await readBounded(file, MAX_MANIFEST_BYTES);
    if (read.kind !== 'read') {
      const problem = read.kind === 'refused' ? `cannot read the manifest: ${read.reason}` : 'missing';
      checker.damaged.push({ model, path: file, problem, line });
      continue;
    }
    let manifest: ReturnType<typeof parseManifest>;
    try {
      manifest = parseManifest(read.bytes, model);
    } catch (error) {
      checker.damaged.push({ model, path: file, problem: describeError(error), line });
      continue;
    }
    for (const blob of [manifest.config, ...manifest.layers]) {
      const path = join(root, 'blobs', `sha256-${blob.hex}`);
      const problem = await checker.problem(path, { algorithm: 'sha256', hex: blob.hex }, blob.size);
      if (problem) checker.damaged.push({ model, path, problem, line } satisfies Damage);
    }
  }
  return checker.report();
}

/**
 * The shortest line naming an Ollama model: Ollama's own defaults (its registry, `library/`) left
 * out. The store does not keep the scheme; a registry on loopback is taken to be plain http (a
 * local or test registry), anything else https.
 */
function ollamaLine(name: string): string {
  const short = name.replace(/^registry\.ollama\.ai\/(library\/)?/, '');
  const host = short.split('/')[0]!;
  const hostname = /^\[[^\]]*\]/.exec(host)?.[0] ?? host.replace(/:\d+$/, '');
  const loopback = short.includes('/') && isLoopbackHost(hostname);
  return `ollama:${loopback ? 'http://' : ''}${short}`;
}

/** `host/namespace/name/tag` (the manifest's path in the store) as `host/namespace/name:tag`. */
function ollamaName(path: string): string {
  const parts = path.split(sep);
  const tag = parts.pop();
  return parts.length ? `${parts.join('/')}:${tag}` : (tag ?? path);
}
