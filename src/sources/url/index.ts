import { Inputs } from '../../constants.js';
import { badLine } from '../../refs/line.js';
import type { SourceDescriptor } from '../descriptor.js';
import { urlMirror } from './mirror.js';
import { parseUrlRef, type UrlRef } from './ref.js';
import { createUrlSource } from './source.js';
import { verifyFilesDir } from './verify.js';

/** `https://host/path/file.gguf sha256=<64 hex>`: a plain file, landing in files-dir. */
export const urlSource: SourceDescriptor<UrlRef> = {
  kind: 'url',
  prefixes: ['https://', 'http://'],
  syntax: 'an https:// URL with sha256=',
  usage: 'https://HOST/PATH/FILE sha256=HEX',
  parse: parseUrlRef,
  stores: (settings) => [
    {
      what: 'files-dir',
      path: settings.filesDir,
      input: Inputs.FilesDir,
      verify: { label: 'files', check: verifyFilesDir },
    },
  ],
  // The line carries its sha256: nothing to look up.
  phases: { resolving: '', listing: '', writing: '' },
  canonical: (ref) => `${ref.url} sha256=${ref.sha256}`,
  // URL lines land as <files-dir>/<file name>: two different files may not share one.
  checkLines(refs) {
    const byName = new Map<string, UrlRef>();
    for (const { line, ref } of refs) {
      const first = byName.get(ref.fileName);
      if (first && first.sha256 !== ref.sha256) {
        throw badLine(
          line,
          `its file name "${ref.fileName}" is already used by "${first.line}" for other bytes`,
        );
      }
      byName.set(ref.fileName, ref);
    }
  },
  create: (settings) => createUrlSource({ filesDir: settings.filesDir }),
  mirror: urlMirror,
};
