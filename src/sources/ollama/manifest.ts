import { isSha256Hex } from '../../digest.js';
import { ModelPullError } from '../../errors.js';

/** The manifest types a registry may answer with; both carry the same config + layers shape. */
export const DOCKER_MANIFEST_V2 = 'application/vnd.docker.distribution.manifest.v2+json';
export const OCI_MANIFEST_V1 = 'application/vnd.oci.image.manifest.v1+json';
export const MANIFEST_ACCEPT = `${DOCKER_MANIFEST_V2}, ${OCI_MANIFEST_V1}`;

/** The layer that holds the GGUF weights (protocols.md, layer media types). */
export const OLLAMA_MODEL_LAYER = 'application/vnd.ollama.image.model';

/** Indexes point at other manifests, per platform; a model is never published as one. */
const INDEX_TYPES = new Set([
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
]);

/**
 * Far beyond any model (1 PiB) yet small enough that sums stay exact in a double: a size above
 * it is a broken or hostile manifest, not a download to plan disk space for.
 */
export const MAX_BLOB_SIZE = 2 ** 50;

/** OCI registries must accept manifests up to 4 MiB; anything larger is not a model manifest. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface Descriptor {
  readonly mediaType: string;
  /** Validated `sha256` hex (64 lowercase hex), safe in a path and a URL. */
  readonly hex: string;
  readonly size: number;
}

export interface OllamaManifest {
  /** The manifest bytes decoded as UTF-8, exactly as served (they re-encode to the same bytes). */
  readonly text: string;
  readonly config: Descriptor;
  readonly layers: readonly Descriptor[];
  /** config + layers, in bytes. */
  readonly totalSize: number;
}

function bad(name: string, reason: string): ModelPullError {
  return new ModelPullError('ERR_BAD_MANIFEST', `manifest of ${name} is invalid: ${reason}`);
}

/**
 * Parses and validates manifest bytes before anything in them is used in a path or a URL:
 * schemaVersion 2, a manifest (not an index) type, a config and at least one layer, each with a
 * `sha256:<64 hex>` digest and a whole size in [0, 2^50], no digest listed twice.
 */
export function parseManifest(bytes: Uint8Array, name: string): OllamaManifest {
  let text: string;
  let doc: unknown;
  try {
    // ignoreBOM keeps a BOM in the text, so the text always re-encodes to the served bytes.
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
    doc = JSON.parse(text);
  } catch {
    throw bad(name, 'it is not UTF-8 JSON');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    throw bad(name, 'it is not a JSON object');
  const m = doc as Record<string, unknown>;
  if (m.schemaVersion !== 2)
    throw bad(name, `unsupported schemaVersion ${short(m.schemaVersion)} (expected 2)`);
  if (m.mediaType !== undefined) {
    if (typeof m.mediaType === 'string' && INDEX_TYPES.has(m.mediaType)) {
      throw bad(name, `it is an image index (${m.mediaType}), not a model manifest`);
    }
    if (m.mediaType !== DOCKER_MANIFEST_V2 && m.mediaType !== OCI_MANIFEST_V1) {
      throw bad(name, `unsupported mediaType ${short(m.mediaType)}`);
    }
  }
  const config = descriptor(name, 'config', m.config);
  if (!Array.isArray(m.layers) || m.layers.length === 0) throw bad(name, 'it lists no layers');
  const layers = m.layers.map((l, i) => descriptor(name, `layer ${i + 1}`, l));

  const seen = new Map<string, string>([[config.hex, 'the config']]);
  let totalSize = config.size;
  layers.forEach((layer, i) => {
    const earlier = seen.get(layer.hex);
    if (earlier) throw bad(name, `layer ${i + 1} repeats the digest of ${earlier} (sha256:${layer.hex})`);
    seen.set(layer.hex, `layer ${i + 1}`);
    totalSize += layer.size;
  });
  if (totalSize > MAX_BLOB_SIZE)
    throw bad(name, `its blobs add up to ${totalSize} bytes, over the 2^50 limit`);
  return { text, config, layers, totalSize };
}

function descriptor(name: string, what: string, value: unknown): Descriptor {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw bad(name, `${what} is missing or not an object`);
  }
  const d = value as Record<string, unknown>;
  if (typeof d.mediaType !== 'string' || d.mediaType === '') throw bad(name, `${what} has no mediaType`);
  const digest = d.digest;
  if (typeof digest !== 'string' || !digest.startsWith('sha256:') || !isSha256Hex(digest.slice(7))) {
    throw bad(name, `${what} has an invalid digest ${short(digest)} (expected sha256: and 64 lowercase hex)`);
  }
  const size = d.size;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw bad(name, `${what} has an invalid size ${short(size)}`);
  }
  if (size > MAX_BLOB_SIZE) throw bad(name, `${what} has an absurd size ${size} (over 2^50 bytes)`);
  return { mediaType: d.mediaType, hex: digest.slice(7), size };
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

function short(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}
