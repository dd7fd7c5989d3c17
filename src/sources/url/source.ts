import { join } from 'node:path';
import { redactUrl } from '../../errors.js';
import { checkRecordedName, type Identity, recordedIdentityError, type Source } from '../../plan.js';
import { writeUrlRecord } from './record.js';
import type { UrlRef } from './ref.js';

/**
 * The plain-URL source: the line carries its sha256, so identifying it needs no request. The
 * size is learned from the server; the file lands as `<files-dir>/<file name>`.
 */
export function createUrlSource(options: { readonly filesDir: string }): Source<UrlRef> {
  return {
    async identify(ref) {
      return identityOf(ref);
    },
    async plan(ref, identity) {
      // The line itself is the whole identity: a recorded one must say the same.
      const expected = identityOf(ref);
      checkRecordedName(identity, expected.name);
      if (identity.pin !== expected.pin)
        throw recordedIdentityError(
          identity,
          `it names ${identity.name} ${identity.pin}, not the line's file`,
        );
      if (identity.contentDigest !== expected.contentDigest)
        throw recordedIdentityError(identity, 'contentDigest is not the sha256 of the file');
      const target = join(options.filesDir, ref.fileName);
      return {
        identity: expected,
        path: target,
        size: 0,
        files: [{ path: target, digest: expected.pin, size: 0 }],
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
        commit: () =>
          writeUrlRecord(options.filesDir, { line: ref.line, file: ref.fileName, sha256: ref.sha256 }),
      };
    },
  };
}

function identityOf(ref: UrlRef): Identity {
  return {
    source: 'url',
    ref: ref.line,
    name: redactUrl(ref.url),
    pin: `sha256:${ref.sha256}`,
    contentDigest: ref.sha256,
  };
}
