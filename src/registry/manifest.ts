import { isSha256Hex } from '../digest.js';
import { ModelPullError } from '../errors.js';

/**
 * OCI image manifests and indexes, as the distribution API serves them (docs/registries.md,
 * "Manifests"). Nothing here knows what the layers hold: Ollama, ModelPack and Docker Model
 * Runner artifacts are all a config plus layers of their own media types.
 */
export const MediaTypes = {
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
} as const;

const MANIFEST_TYPES: ReadonlySet<string> = new Set([MediaTypes.DockerManifest, MediaTypes.OciManifest]);
const INDEX_TYPES: ReadonlySet<string> = new Set([MediaTypes.OciIndex, MediaTypes.DockerManifestList]);

/** `Accept` for a manifest that must be a single image (config + layers). */
export const MANIFEST_ACCEPT = [...MANIFEST_TYPES].join(', ');
/** `Accept` for a reference that may name an index (per-platform or per-variant manifests). */
export const MANIFEST_OR_INDEX_ACCEPT = [...MANIFEST_TYPES, ...INDEX_TYPES].join(', ');

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
  /** String annotations (ModelPack names a layer's file in `org.cncf.model.filepath`). */
  readonly annotations?: Readonly<Record<string, string>>;
  /** On an index entry or an artifact manifest: what kind of artifact it is. */
  readonly artifactType?: string;
  /** On an index entry: the platform it is for (`os`, `architecture`, `variant`, …). */
  readonly platform?: Readonly<Record<string, unknown>>;
}

/** An image manifest: one config and its layers. */
export interface ImageManifest {
  readonly kind: 'manifest';
  /** The manifest bytes decoded as UTF-8, exactly as served (they re-encode to the same bytes). */
  readonly text: string;
  /** Absent in old Docker manifests, which the schemaVersion alone identifies. */
  readonly mediaType: string | undefined;
  readonly artifactType?: string;
  readonly config: Descriptor;
  readonly layers: readonly Descriptor[];
  readonly annotations?: Readonly<Record<string, string>>;
  /** config + layers, in bytes. */
  readonly totalSize: number;
}

/** An image index: manifests to choose from (by platform, by artifact type). */
export interface ImageIndex {
  readonly kind: 'index';
  readonly text: string;
  readonly mediaType: string | undefined;
  readonly manifests: readonly Descriptor[];
  readonly annotations?: Readonly<Record<string, string>>;
}

export function badManifest(name: string, reason: string): ModelPullError {
  return new ModelPullError('ERR_BAD_MANIFEST', `manifest of ${name} is invalid: ${reason}`);
}

/**
 * Parses and validates a manifest or an index before anything in it reaches a path or a URL:
 * UTF-8 JSON, schemaVersion 2, a known media type, every descriptor with a `sha256:<64 hex>`
 * digest and a whole size in [0, 2^50]. `name` only labels the errors.
 */
export function parseManifestOrIndex(bytes: Uint8Array, name: string): ImageManifest | ImageIndex {
  const { text, doc } = decode(bytes, name);
  const mediaType = doc.mediaType as string | undefined;
  return isIndex(doc, name) ? index(text, doc, mediaType, name) : manifest(text, doc, mediaType, name);
}

/** An image manifest only: an index here is refused (the caller asked for one image). */
export function parseImageManifest(bytes: Uint8Array, name: string): ImageManifest {
  const { text, doc } = decode(bytes, name);
  const mediaType = doc.mediaType as string | undefined;
  if (isIndex(doc, name))
    throw badManifest(name, `it is an image index (${mediaType ?? 'no mediaType'}), not a model manifest`);
  return manifest(text, doc, mediaType, name);
}

/** By its media type; one written without any is an index when it lists manifests and no layers. */
function isIndex(doc: Record<string, unknown>, name: string): boolean {
  const mediaType = doc.mediaType;
  if (mediaType === undefined) return doc.manifests !== undefined && doc.layers === undefined;
  if (typeof mediaType === 'string' && INDEX_TYPES.has(mediaType)) return true;
  if (typeof mediaType === 'string' && MANIFEST_TYPES.has(mediaType)) return false;
  throw badManifest(name, `unsupported mediaType ${short(mediaType)}`);
}

function decode(bytes: Uint8Array, name: string): { text: string; doc: Record<string, unknown> } {
  let text: string;
  let doc: unknown;
  try {
    // ignoreBOM keeps a BOM in the text, so the text always re-encodes to the served bytes.
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
    doc = JSON.parse(text);
  } catch {
    throw badManifest(name, 'it is not UTF-8 JSON');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    throw badManifest(name, 'it is not a JSON object');
  const m = doc as Record<string, unknown>;
  if (m.schemaVersion !== 2)
    throw badManifest(name, `unsupported schemaVersion ${short(m.schemaVersion)} (expected 2)`);
  return { text, doc: m };
}

function manifest(
  text: string,
  m: Record<string, unknown>,
  mediaType: string | undefined,
  name: string,
): ImageManifest {
  const config = descriptor(name, 'config', m.config);
  if (!Array.isArray(m.layers) || m.layers.length === 0) throw badManifest(name, 'it lists no layers');
  const layers = m.layers.map((l, i) => descriptor(name, `layer ${i + 1}`, l));
  const totalSize = layers.reduce((sum, l) => sum + l.size, config.size);
  if (totalSize > MAX_BLOB_SIZE)
    throw badManifest(name, `its blobs add up to ${totalSize} bytes, over the 2^50 limit`);
  const annotations = annotationsOf(name, 'it', m.annotations);
  return {
    kind: 'manifest',
    text,
    mediaType,
    ...(typeof m.artifactType === 'string' ? { artifactType: m.artifactType } : {}),
    config,
    layers,
    ...(annotations ? { annotations } : {}),
    totalSize,
  };
}

function index(
  text: string,
  m: Record<string, unknown>,
  mediaType: string | undefined,
  name: string,
): ImageIndex {
  if (!Array.isArray(m.manifests)) throw badManifest(name, 'the index lists no manifests');
  const manifests = m.manifests.map((d, i) => descriptor(name, `index entry ${i + 1}`, d));
  const annotations = annotationsOf(name, 'it', m.annotations);
  return { kind: 'index', text, mediaType, manifests, ...(annotations ? { annotations } : {}) };
}

function descriptor(name: string, what: string, value: unknown): Descriptor {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw badManifest(name, `${what} is missing or not an object`);
  }
  const d = value as Record<string, unknown>;
  if (typeof d.mediaType !== 'string' || d.mediaType === '')
    throw badManifest(name, `${what} has no mediaType`);
  const digest = d.digest;
  if (typeof digest !== 'string' || !digest.startsWith('sha256:') || !isSha256Hex(digest.slice(7))) {
    throw badManifest(
      name,
      `${what} has an invalid digest ${short(digest)} (expected sha256: and 64 lowercase hex)`,
    );
  }
  const size = d.size;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw badManifest(name, `${what} has an invalid size ${short(size)}`);
  }
  if (size > MAX_BLOB_SIZE) throw badManifest(name, `${what} has an absurd size ${size} (over 2^50 bytes)`);
  const annotations = annotationsOf(name, what, d.annotations);
  const platform = d.platform;
  if (
    platform !== undefined &&
    (typeof platform !== 'object' || platform === null || Array.isArray(platform))
  )
    throw badManifest(name, `${what} has a platform that is not an object`);
  return {
    mediaType: d.mediaType,
    hex: digest.slice(7),
    size,
    ...(annotations ? { annotations } : {}),
    ...(typeof d.artifactType === 'string' ? { artifactType: d.artifactType } : {}),
    ...(platform ? { platform: platform as Record<string, unknown> } : {}),
  };
}

function annotationsOf(name: string, what: string, value: unknown): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  const ok =
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    Object.values(value).every((v) => typeof v === 'string');
  if (!ok) throw badManifest(name, `${what} has annotations that are not string pairs`);
  return value as Record<string, string>;
}

function short(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}
