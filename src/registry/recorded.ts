import { sha256Hex, sha256HexOf } from '../digest.js';
import { ModelPullError } from '../errors.js';
import { checkRecordedName, type Identity, recordedIdentityError } from '../plan.js';

/**
 * The rules every registry source (ollama:, oci:) applies to an identity from identify() or a
 * lock file: it pins a manifest by digest, and the manifest text it may carry is those bytes.
 */

/**
 * The manifest digest (hex) an identity records, once it names `name` and its pin is a
 * `sha256:` digest equal to its contentDigest.
 */
export function recordedManifestHex(identity: Identity, name: string): string {
  checkRecordedName(identity, name);
  const hex = sha256HexOf(identity.pin);
  if (hex === undefined || identity.contentDigest !== hex)
    throw recordedIdentityError(identity, `"${identity.pin.slice(0, 80)}" is not a manifest digest`);
  return hex;
}

/** The manifest bytes an identity records (`detail.manifest`), checked against `hex`; none: undefined. */
export function recordedManifest(identity: Identity, name: string, hex: string): Buffer | undefined {
  const text = identity.detail?.manifest;
  if (typeof text !== 'string') return undefined;
  const bytes = Buffer.from(text, 'utf8');
  const actual = sha256Hex(bytes);
  if (actual !== hex) {
    throw new ModelPullError(
      'ERR_DIGEST_MISMATCH',
      `the recorded manifest of ${name} hashes to sha256:${actual}, not its recorded digest sha256:${hex}`,
    );
  }
  return bytes;
}
