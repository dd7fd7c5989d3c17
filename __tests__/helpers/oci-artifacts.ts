import { randomBytes } from 'node:crypto';
import { pushBlob, send, sha256 } from './registry.js';

/**
 * Model artifacts as their own tools write them: CNCF ModelPack (modctl, KitOps) and Docker Model
 * Runner (`docker model package`), built from bytes in the test and pushed to a registry.
 */
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const MODELPACK_ARTIFACT = 'application/vnd.cncf.model.manifest.v1+json';
export const MODELPACK_CONFIG = 'application/vnd.cncf.model.config.v1+json';
export const DOCKER_CONFIG_V01 = 'application/vnd.docker.ai.model.config.v0.1+json';
export const FILEPATH = 'org.cncf.model.filepath';

export interface Layer {
  readonly mediaType: string;
  readonly bytes: Buffer;
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface Artifact {
  readonly config: Layer;
  readonly layers: readonly Layer[];
  /** The manifest bytes as pushed. */
  readonly manifest: Buffer;
  readonly hex: string;
}

export function descriptorOf(layer: Layer): Record<string, unknown> {
  return {
    mediaType: layer.mediaType,
    digest: `sha256:${sha256(layer.bytes)}`,
    size: layer.bytes.length,
    ...(layer.annotations ? { annotations: layer.annotations } : {}),
  };
}

function artifact(config: Layer, layers: readonly Layer[], artifactType?: string): Artifact {
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      ...(artifactType ? { artifactType } : {}),
      config: descriptorOf(config),
      layers: layers.map(descriptorOf),
    }),
  );
  return { config, layers, manifest, hex: sha256(manifest) };
}

/** A ModelPack artifact: `config.v1+json` with a unique name, the given layers. */
export function modelPack(layers: readonly Layer[]): Artifact {
  const config = Buffer.from(
    JSON.stringify({
      descriptor: { name: `test-${randomBytes(4).toString('hex')}`, family: 'test' },
      config: { format: 'gguf', paramSize: '1M' },
      modelfs: { type: 'layers', diffIds: layers.map((l) => `sha256:${sha256(l.bytes)}`) },
    }),
  );
  return artifact({ mediaType: MODELPACK_CONFIG, bytes: config }, layers, MODELPACK_ARTIFACT);
}

/** A Docker Model Runner artifact (config v0.1: layers without file names). */
export function dockerModel(layers: readonly Layer[]): Artifact {
  const config = Buffer.from(
    JSON.stringify({
      config: { format: 'gguf', quantization: 'Q4_K_M', parameters: '1M', size: '1MB' },
      descriptor: { created: '2026-01-01T00:00:00Z' },
      rootfs: { type: 'rootfs', diff_ids: layers.map((l) => `sha256:${sha256(l.bytes)}`) },
      nonce: randomBytes(4).toString('hex'),
    }),
  );
  return artifact({ mediaType: DOCKER_CONFIG_V01, bytes: config }, layers);
}

/** `GGUF` then random bytes: enough of a GGUF file for a layout. */
export function gguf(size: number): Buffer {
  return Buffer.concat([Buffer.from('GGUF'), randomBytes(size - 4)]);
}

export async function putManifest(
  base: string,
  repo: string,
  reference: string,
  type: string,
  body: Buffer,
): Promise<void> {
  const answer = await send(
    'PUT',
    `${base}/v2/${repo}/manifests/${reference}`,
    { 'content-type': type },
    body,
  );
  if (answer.status !== 201)
    throw new Error(`PUT manifest ${reference}: ${answer.status} ${answer.body.toString()}`);
}

/** Pushes the blobs, then the manifest under `tag`; returns the manifest's hex digest. */
export async function pushArtifact(base: string, repo: string, tag: string, a: Artifact): Promise<string> {
  for (const blob of [a.config, ...a.layers]) await pushBlob(base, repo, blob.bytes);
  await putManifest(base, repo, tag, OCI_MANIFEST, a.manifest);
  return a.hex;
}

/** An image index over already pushed manifests. */
export function indexOf(entries: readonly Record<string, unknown>[]): Buffer {
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: entries }));
}
