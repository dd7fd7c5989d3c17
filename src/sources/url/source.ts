import { join } from 'node:path';
import { redactUrl } from '../../errors.js';
import type { Source } from '../../plan.js';
import { splitLine } from '../../refs/line.js';
import { parseUrlRef, type UrlRef } from './ref.js';

/**
 * The plain-URL source: the line carries its sha256, so identifying it needs no request. The
 * size is learned from the server; the file lands as `<files-dir>/<file name>`.
 */
export function createUrlSource(options: { readonly filesDir: string }): Source<UrlRef> {
  return {
    async identify(ref) {
      return {
        source: 'url',
        ref: ref.line,
        name: redactUrl(ref.url),
        digest: `sha256:${ref.sha256}`,
        contentDigest: ref.sha256,
      };
    },
    async plan(identity) {
      // The line itself is the whole identity (a lock file adds nothing to it).
      const ref = parseUrlRef(splitLine(identity.ref));
      const target = join(options.filesDir, ref.fileName);
      return {
        identity,
        path: target,
        size: 0,
        files: [{ path: target, digest: identity.digest, size: 0 }],
        blobs: [
          {
            digest: { algorithm: 'sha256', hex: ref.sha256 },
            label: ref.fileName,
            target,
            ingestDir: join(options.filesDir, '.model-pull-ingest'),
            locate: async () => ({ url: ref.url }),
          },
        ],
        cachePaths: [target],
        commit: async () => undefined,
      };
    },
  };
}
