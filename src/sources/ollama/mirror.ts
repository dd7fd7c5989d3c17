import { sha256Hex } from '../../digest.js';
import { ModelPullError } from '../../errors.js';
import type { SourceMirror } from '../../mirror/types.js';
import { badLine } from '../../refs/line.js';
import { MediaTypes } from '../../registry/manifest.js';
import { nameUnder, repositoryPart, repositoryUnder } from '../../registry/prefix.js';
import type { LocalBlob } from '../../registry/push.js';
import { layerKind, parseManifest } from './manifest.js';
import type { OllamaRef } from './ref.js';

/**
 * Ollama models go to a registry as they are: the same manifest bytes (so the same digest where
 * the registry keeps them verbatim), the same layers and media types, under
 * `<host>/<namespace>/<model>:<tag>`, which is all an Ollama name can hold (docs/registries.md,
 * "Ollama's registry and names"). A prefix with one path part is that namespace; a bare host
 * keeps the source's namespace.
 */
export const ollamaMirror: SourceMirror<OllamaRef> = {
  target(ref, line, prefix) {
    const parts = prefix.path === '' ? [] : prefix.path.split('/');
    if (parts.length > 1) {
      throw badLine(
        line,
        `Ollama names hold one namespace (host/namespace/model:tag), so Ollama models can go to ${prefix.host} or ${prefix.host}/${parts[0]}, not under ${prefix.text}`,
      );
    }
    const namespace = parts.length ? [] : [repositoryPart(ref.namespace, 'namespace', line)];
    return {
      repository: repositoryUnder(prefix, ...namespace, repositoryPart(ref.model, 'model', line)),
      origin: `${ref.host}/${ref.namespace}/${ref.model}`,
    };
  },

  async artifact(ref, model, target, settings) {
    const text = model.identity.detail?.manifest;
    if (typeof text !== 'string') throw new Error(`${ref.line}: the pull left no manifest to push`);
    const bytes = Buffer.from(text, 'utf8');
    if (sha256Hex(bytes) !== model.identity.contentDigest) {
      throw new ModelPullError(
        'ERR_DIGEST_MISMATCH',
        `${ref.line}: the manifest to push is not the one pulled (sha256:${model.identity.contentDigest})`,
      );
    }
    const manifest = parseManifest(bytes, model.identity.name);
    const paths = new Map(model.output.files.map((f) => [f.digest, f.path]));
    const blobs: LocalBlob[] = [manifest.config, ...manifest.layers].map((d) => {
      const path = paths.get(`sha256:${d.hex}`);
      if (!path) throw new Error(`${ref.line}: blob sha256:${d.hex} was not pulled`);
      const kind = d === manifest.config ? 'config' : layerKind(d.mediaType);
      return { hex: d.hex, size: d.size, path, label: `${ref.line} ${kind}` };
    });
    return {
      blobs,
      manifest: { bytes, mediaType: manifest.mediaType ?? MediaTypes.DockerManifest },
      references: [ref.tag],
      name: nameUnder(settings.mirrorTo!, target.repository, ref.tag),
    };
  },
};
