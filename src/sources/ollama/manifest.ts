import {
  badManifest,
  type Descriptor,
  type ImageManifest,
  parseImageManifest,
} from '../../registry/manifest.js';

export type { Descriptor } from '../../registry/manifest.js';

/** The layer that holds the GGUF weights (docs/registries.md, "Ollama's registry and names"). */
export const OLLAMA_MODEL_LAYER = 'application/vnd.ollama.image.model';

/** An Ollama model manifest: an image manifest whose blobs are each named once. */
export type OllamaManifest = ImageManifest;

/**
 * An image manifest (not an index) with a config and at least one layer, validated before
 * anything in it is used in a path or a URL, and with no digest listed twice: the store keeps one
 * file per digest, so a repeat can only be a broken or hostile manifest.
 */
export function parseManifest(bytes: Uint8Array, name: string): OllamaManifest {
  const manifest = parseImageManifest(bytes, name);
  const seen = new Map<string, string>([[manifest.config.hex, 'the config']]);
  manifest.layers.forEach((layer, i) => {
    const earlier = seen.get(layer.hex);
    if (earlier)
      throw badManifest(name, `layer ${i + 1} repeats the digest of ${earlier} (sha256:${layer.hex})`);
    seen.set(layer.hex, `layer ${i + 1}`);
  });
  return manifest;
}

/** The weights: the `model` layer; a manifest without one (an adapter-only or OCI artifact) the largest. */
export function weightsLayer(manifest: OllamaManifest): Descriptor {
  const model = manifest.layers.find((l) => l.mediaType === OLLAMA_MODEL_LAYER);
  if (model) return model;
  return manifest.layers.reduce((a, b) => (b.size > a.size ? b : a));
}

/** `model`, `template`, … for Ollama layers; the media type otherwise. For labels. */
export function layerKind(mediaType: string): string {
  const prefix = 'application/vnd.ollama.image.';
  return mediaType.startsWith(prefix) ? mediaType.slice(prefix.length) : mediaType;
}
