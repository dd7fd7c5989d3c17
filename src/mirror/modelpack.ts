import { sha256Hex } from '../digest.js';
import { MediaTypes } from '../registry/manifest.js';
import type { LocalArtifact, LocalBlob } from '../registry/push.js';
import { FILEPATH_ANNOTATION, MODELPACK_ARTIFACT, MODELPACK_CONFIG } from '../sources/oci/formats.js';

/** One file of a model as a raw ModelPack layer. */
export interface PackFile {
  /** Its path in the model's folder (`/`-separated, already checked). */
  readonly path: string;
  /** sha256 hex and size of the bytes. */
  readonly hex: string;
  readonly size: number;
  /** Where the verified bytes are on disk. */
  readonly source: string;
  /** More layer annotations (the Hub's oid of the file). */
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface ModelPackSpec {
  /** The files, in the order their layers are listed. */
  readonly files: readonly PackFile[];
  /** The config's `descriptor` (name, revision, sourceURL…): ModelPack's own fields. */
  readonly descriptor: Readonly<Record<string, string>>;
  /** Fields of our own beside ModelPack's in the config (the HF listing). */
  readonly extra?: Readonly<Record<string, unknown>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly references: readonly string[];
  /** The artifact as users name it, for messages. */
  readonly name: string;
  /** Names the blobs in errors and retry lines. */
  readonly label: string;
}

/**
 * A CNCF ModelPack artifact (docs/oci-artifacts.md, "Formats") with one raw layer per file, its
 * path in `org.cncf.model.filepath`: what `oci:` lines (and modctl, Docker Model Runner) read.
 * The bytes depend only on the files and the metadata given (no timestamps), so pushing the
 * same model again yields the same digest and sends nothing.
 */
export function modelPackArtifact(spec: ModelPackSpec): LocalArtifact {
  const config = Buffer.from(
    JSON.stringify({
      descriptor: spec.descriptor,
      config: formatOf(spec.files),
      modelfs: { type: 'layers', diff_ids: spec.files.map((f) => `sha256:${f.hex}`) },
      ...spec.extra,
    }),
  );
  const configHex = sha256Hex(config);
  const layers = spec.files.map((f) => ({
    mediaType: `application/vnd.cncf.model.${layerKind(f.path)}.v1.raw`,
    digest: `sha256:${f.hex}`,
    size: f.size,
    annotations: { [FILEPATH_ANNOTATION]: f.path, ...f.annotations },
  }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaTypes.OciManifest,
      artifactType: MODELPACK_ARTIFACT,
      config: { mediaType: MODELPACK_CONFIG, digest: `sha256:${configHex}`, size: config.length },
      layers,
      annotations: spec.annotations,
    }),
  );
  // A file listed under two paths is one blob.
  const blobs = new Map<string, LocalBlob>();
  blobs.set(configHex, {
    hex: configHex,
    size: config.length,
    path: `${spec.name} config`,
    bytes: config,
    label: `${spec.label} config`,
  });
  for (const f of spec.files)
    if (!blobs.has(f.hex))
      blobs.set(f.hex, { hex: f.hex, size: f.size, path: f.source, label: `${spec.label} ${f.path}` });
  return {
    blobs: [...blobs.values()],
    manifest: { bytes: manifest, mediaType: MediaTypes.OciManifest },
    references: spec.references,
    name: spec.name,
  };
}

const WEIGHTS = /\.(gguf|safetensors|bin|pt|pth|ckpt|onnx|h5|msgpack|tflite|mlmodel|ot|nemo|llamafile)$/i;
const CODE = /\.(py|ipynb|sh|js|ts|rs|go|c|cc|cpp|h)$/i;
const DOCS = /(^|\/)(readme|license|licence|notice|copying|use_policy|model_card)[^/]*$|\.(md|txt|rst|pdf)$/i;

/** ModelPack's layer kind for a file, by its name: weights, their config, docs, code. */
export function layerKind(path: string): 'weight' | 'weight.config' | 'doc' | 'code' {
  if (WEIGHTS.test(path)) return 'weight';
  if (DOCS.test(path)) return 'doc';
  if (CODE.test(path)) return 'code';
  return 'weight.config';
}

/** The config's `format`, when the weights agree on one file format. */
function formatOf(files: readonly PackFile[]): Record<string, string> {
  const formats = new Set(
    files
      .filter((f) => layerKind(f.path) === 'weight')
      .map((f) => /\.([^./]+)$/.exec(f.path)?.[1]?.toLowerCase()),
  );
  const [format] = formats;
  return formats.size === 1 && format ? { format } : {};
}
