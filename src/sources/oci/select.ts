import { ModelPullError } from '../../errors.js';
import { type Descriptor, type ImageIndex, type ImageManifest, MediaTypes } from '../../registry/manifest.js';
import { announcesModel, artifactFormat } from './formats.js';

/** An index entry and its manifest, as the source loaded it (from the layout or the registry). */
export interface Chosen {
  readonly entry: Descriptor;
  readonly bytes: Buffer;
  readonly manifest: ImageManifest;
}

/** Manifests of an index we open to look for the model when none announces itself. */
const MAX_INSPECTED = 16;
const MANIFEST_TYPES: ReadonlySet<string> = new Set([MediaTypes.OciManifest, MediaTypes.DockerManifest]);

/**
 * The model manifest of an image index (docs/oci-artifacts.md, "Indexes"): the one entry that is
 * a ModelPack or Docker Model Runner manifest. Entries that announce it (`artifactType`) are
 * taken at their word and checked once loaded; otherwise each manifest entry is opened (nested
 * indexes and attestations are not models). None, or more than one, fails with a list of what
 * the index offers, so the user can pin the one they mean.
 */
export async function pickModel(
  index: ImageIndex,
  name: string,
  load: (entry: Descriptor) => Promise<{ bytes: Buffer; manifest: ImageManifest }>,
): Promise<Chosen> {
  const manifests = index.manifests.filter((e) => MANIFEST_TYPES.has(e.mediaType) && !isAttestation(e));
  const announced = manifests.filter(announcesModel);
  const candidates = announced.length > 0 ? announced : manifests;
  if (candidates.length > MAX_INSPECTED) {
    throw choose(index, name, `it lists ${candidates.length} manifests and none announces a model`);
  }
  const models: Chosen[] = [];
  for (const entry of candidates) {
    const loaded = await load(entry);
    if (artifactFormat(loaded.manifest) !== 'unknown') models.push({ entry, ...loaded });
  }
  if (models.length === 1) return models[0]!;
  if (models.length === 0) throw choose(index, name, 'none of its entries is a model manifest');
  throw choose(
    index,
    name,
    `it holds ${models.length} model manifests (${models.map((m) => `sha256:${m.entry.hex}`).join(', ')})`,
  );
}

/** BuildKit stores provenance as manifests for the platform unknown/unknown. */
function isAttestation(entry: Descriptor): boolean {
  return (
    entry.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest' ||
    (entry.platform?.os === 'unknown' && entry.platform?.architecture === 'unknown')
  );
}

function choose(index: ImageIndex, name: string, why: string): ModelPullError {
  const offers = index.manifests.map(describeEntry).join('; ');
  return new ModelPullError(
    'ERR_BAD_MANIFEST',
    `${name} is an image index, and ${why}; it offers: ${offers || 'nothing'}. Pin the model's manifest with @sha256:<digest>`,
  );
}

/** `sha256:<hex> (mediaType, artifactType …, linux/amd64)` */
function describeEntry(entry: Descriptor): string {
  const platform = entry.platform
    ? [entry.platform.os, entry.platform.architecture, entry.platform.variant]
        .filter((p) => typeof p === 'string')
        .join('/')
    : '';
  const details = [
    entry.mediaType,
    ...(entry.artifactType ? [`artifactType ${entry.artifactType}`] : []),
    ...(platform ? [platform] : []),
  ];
  return `sha256:${entry.hex} (${details.join(', ')})`;
}
