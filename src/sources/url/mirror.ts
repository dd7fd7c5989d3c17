import { stat } from 'node:fs/promises';
import { redactUrl } from '../../errors.js';
import { modelPackArtifact } from '../../mirror/modelpack.js';
import type { SourceMirror } from '../../mirror/types.js';
import { nameUnder, repositoryPart, repositoryUnder } from '../../registry/prefix.js';
import type { UrlRef } from './ref.js';

/**
 * A URL file as a single-layer ModelPack artifact at `<prefix>/files/<file name>:<sha256>`: the
 * tag is the line's own pin, so an `oci:` line with that tag (or a pin of the manifest) reads
 * back exactly the file the URL line verified.
 */
export const urlMirror: SourceMirror<UrlRef> = {
  target(ref, line, prefix) {
    const name = repositoryPart(ref.fileName, 'file name', line);
    // Files of one name from different URLs share the repository: their tags (sha256) differ.
    return { repository: repositoryUnder(prefix, 'files', name), origin: `file ${name}` };
  },

  async artifact(ref, model, target, settings) {
    const source = model.output.path;
    const { size } = await stat(source);
    const url = redactUrl(ref.url);
    return modelPackArtifact({
      files: [{ path: ref.fileName, hex: ref.sha256, size, source }],
      descriptor: { name: ref.fileName, sourceURL: url },
      annotations: { 'org.opencontainers.image.source': url },
      references: [ref.sha256],
      name: nameUnder(settings.mirrorTo!, target.repository, ref.sha256),
      label: ref.line,
    });
  },
};
