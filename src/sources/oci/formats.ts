import type { Descriptor, ImageManifest } from '../../registry/manifest.js';

/**
 * What the two model artifact formats say about their layers (docs/oci-artifacts.md, "Formats"):
 * which layer is a file at a path, which is a tar archive of files, which we do not know. The
 * rules are data, not code paths, so a new media type is one entry here.
 */

export const MODELPACK_ARTIFACT = 'application/vnd.cncf.model.manifest.v1+json';
export const MODELPACK_CONFIG = 'application/vnd.cncf.model.config.v1+json';
const DOCKER_CONFIG_PREFIX = 'application/vnd.docker.ai.model.config.';
/** Both formats name a layer's file here, relative to the model's folder. */
export const FILEPATH_ANNOTATION = 'org.cncf.model.filepath';
/** What ORAS and other generic artifact tools name a layer's file with. */
const TITLE_ANNOTATION = 'org.opencontainers.image.title';

export type ArtifactFormat = 'modelpack' | 'docker' | 'unknown';
export type Compression = 'none' | 'gzip' | 'zstd';

/** How one layer lands in the model's folder. */
export type Placement =
  /** The blob is the file at `path` (hard-linked). */
  | { readonly kind: 'file'; readonly layer: Descriptor; readonly path: string; readonly gguf: boolean }
  /** The blob is a tar archive whose members are extracted at the folder's root. */
  | { readonly kind: 'archive'; readonly layer: Descriptor; readonly compression: Compression }
  /** Kept only as a blob in the OCI layout; `why` is reported. */
  | { readonly kind: 'blob'; readonly layer: Descriptor; readonly why: string };

export interface ArtifactLayout {
  readonly format: ArtifactFormat;
  readonly placements: readonly Placement[];
}

const MODELPACK_LAYER =
  /^application\/vnd\.cncf\.model\.(weight|weight\.config|doc|code|dataset)\.v1\.(raw|tar|tar\+gzip|tar\+zstd)$/;
/** Docker Model Runner marks some ModelPack weights with their file format (`…weight.v1.gguf`). */
const MODELPACK_TYPED_WEIGHT = /^application\/vnd\.cncf\.model\.weight\.v1\.([a-z0-9]+)$/;

/**
 * Docker Model Runner's layer types: single files, with the name its own unpacker gives them
 * when a layer carries no path (v0.1 artifacts), and its tar archives of folders.
 */
const DOCKER_FILES: Readonly<Record<string, { readonly name: string; readonly gguf?: boolean }>> = {
  'application/vnd.docker.ai.gguf.v3': { name: 'model.gguf', gguf: true },
  'application/vnd.docker.ai.safetensors': { name: 'model.safetensors' },
  'application/vnd.docker.ai.dduf': { name: 'model.dduf' },
  'application/vnd.docker.ai.mmproj': { name: 'model.mmproj' },
  'application/vnd.docker.ai.chat.template.jinja': { name: 'template.jinja' },
  'application/vnd.docker.ai.license': { name: 'LICENSE' },
};
const DOCKER_ARCHIVES: ReadonlySet<string> = new Set([
  'application/vnd.docker.ai.dir.tar',
  'application/vnd.docker.ai.vllm.config.tar',
]);

/** Generic OCI layer archives, which early model artifacts (CNAI) used for their files. */
const OCI_ARCHIVES: Readonly<Record<string, Compression>> = {
  'application/vnd.oci.image.layer.v1.tar': 'none',
  'application/vnd.oci.image.layer.v1.tar+gzip': 'gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd': 'zstd',
};

export function artifactFormat(manifest: ImageManifest): ArtifactFormat {
  if (manifest.artifactType === MODELPACK_ARTIFACT || manifest.config.mediaType === MODELPACK_CONFIG)
    return 'modelpack';
  if (manifest.config.mediaType.startsWith(DOCKER_CONFIG_PREFIX)) return 'docker';
  return 'unknown';
}

/** Configs of container images (OCI and Docker): their layers are root filesystems, not model files. */
const IMAGE_CONFIGS: ReadonlySet<string> = new Set([
  'application/vnd.oci.image.config.v1+json',
  'application/vnd.docker.container.image.v1+json',
]);

/**
 * Why a manifest is no model artifact at all, before anything is fetched: an Ollama model (its
 * own source reads it) or a container image. Other unknown artifacts are pulled as they are.
 */
export function notAModel(manifest: ImageManifest): string | undefined {
  if (artifactFormat(manifest) !== 'unknown') return undefined;
  if (manifest.layers.some((l) => l.mediaType.startsWith('application/vnd.ollama.image.')))
    return 'it is an Ollama model: pull it with an ollama: line';
  if (IMAGE_CONFIGS.has(manifest.config.mediaType))
    return `it is a container image (config ${manifest.config.mediaType}), not a model artifact`;
  return undefined;
}

/** Whether an index entry announces a model manifest (its `artifactType`), without fetching it. */
export function announcesModel(entry: Descriptor): boolean {
  return (
    entry.artifactType === MODELPACK_ARTIFACT || entry.artifactType?.startsWith(DOCKER_CONFIG_PREFIX) === true
  );
}

/**
 * Where every layer goes. Paths are as the artifact states them; the folder module checks them
 * (relative, no `..`, no clash) before anything is written.
 */
export function layoutOf(manifest: ImageManifest): ArtifactLayout {
  const format = artifactFormat(manifest);
  // Unnamed Docker layers are named by type, numbered among those of their type.
  const docker = manifest.layers.filter((l) => DOCKER_FILES[l.mediaType] !== undefined && !annotatedPath(l));
  const placements = manifest.layers.map((layer) => placementOf(layer, docker));
  return { format, placements };
}

function placementOf(layer: Descriptor, dockerFiles: readonly Descriptor[]): Placement {
  const type = layer.mediaType;
  const annotated = annotatedPath(layer);
  const modelpack = MODELPACK_LAYER.exec(type);
  if (modelpack) {
    const packing = modelpack[2]!;
    if (packing !== 'raw') return { kind: 'archive', layer, compression: compressionOf(packing) };
    if (!annotated) return { kind: 'blob', layer, why: `a ${type} layer without ${FILEPATH_ANNOTATION}` };
    return { kind: 'file', layer, path: annotated, gguf: modelpack[1] === 'weight' && isGgufName(annotated) };
  }
  const typedWeight = MODELPACK_TYPED_WEIGHT.exec(type);
  if (typedWeight && annotated) {
    return { kind: 'file', layer, path: annotated, gguf: typedWeight[1] === 'gguf' };
  }
  const dockerFile = DOCKER_FILES[type];
  if (dockerFile) {
    const path = annotated || defaultDockerName(layer, dockerFile.name, dockerFiles);
    return { kind: 'file', layer, path, gguf: dockerFile.gguf === true };
  }
  if (DOCKER_ARCHIVES.has(type)) return { kind: 'archive', layer, compression: 'none' };
  const oci = OCI_ARCHIVES[type];
  if (oci !== undefined) return { kind: 'archive', layer, compression: oci };
  if (annotated && type.startsWith('application/vnd.cncf.model.'))
    return { kind: 'file', layer, path: annotated, gguf: false };
  return { kind: 'blob', layer, why: `unknown layer type ${type}` };
}

function annotatedPath(layer: Descriptor): string | undefined {
  return layer.annotations?.[FILEPATH_ANNOTATION] || layer.annotations?.[TITLE_ANNOTATION] || undefined;
}

function compressionOf(packing: string): Compression {
  return packing === 'tar+gzip' ? 'gzip' : packing === 'tar+zstd' ? 'zstd' : 'none';
}

/**
 * A v0.1 Docker artifact names no files: its runner calls one GGUF `model.gguf` and several
 * `model-00001-of-00003.gguf` (in layer order); the other types likewise by their kind.
 */
function defaultDockerName(layer: Descriptor, name: string, dockerFiles: readonly Descriptor[]): string {
  const same = dockerFiles.filter((l) => l.mediaType === layer.mediaType);
  if (same.length < 2) return name;
  const n = String(same.length).padStart(5, '0');
  const i = String(same.indexOf(layer) + 1).padStart(5, '0');
  const dot = name.lastIndexOf('.');
  return dot > 0 ? `${name.slice(0, dot)}-${i}-of-${n}${name.slice(dot)}` : `${name}-${i}-of-${n}`;
}

/**
 * A GGUF weights file by its name. A multimodal projector is GGUF too, but not the model's
 * weights: ModelPack gives it the same weight media type, and its name says `mmproj` (the
 * heuristic Docker Model Runner and Hugging Face tooling use).
 */
function isGgufName(path: string): boolean {
  const lower = path.toLowerCase();
  const base = lower.slice(lower.lastIndexOf('/') + 1);
  return base.endsWith('.gguf') && !base.includes('mmproj');
}

/** The model's single GGUF weights file, when it has exactly one. */
export function singleGguf(
  placements: readonly Placement[],
): Extract<Placement, { kind: 'file' }> | undefined {
  const ggufs = placements.filter(
    (p): p is Extract<Placement, { kind: 'file' }> => p.kind === 'file' && p.gguf,
  );
  return ggufs.length === 1 ? ggufs[0] : undefined;
}
