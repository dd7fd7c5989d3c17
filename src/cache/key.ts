import { isSha256Hex } from '../digest.js';
import { ModelPullError } from '../errors.js';
import type { Identity } from '../plan.js';

/**
 * Version of the on-disk layouts an entry holds. Bump it when what a cache entry contains for
 * the same content changes (another layout, other files), so old entries are never restored
 * into a layout that no longer expects them.
 */
export const LAYOUT_VERSION = 'v1';

/** The Actions cache refuses longer keys (docs/actions-cache.md, "Keys"). */
export const MAX_KEY_LENGTH = 512;

// The service splits key lists on commas; control characters would break log lines and annotations.
const FORBIDDEN = /[,\p{Cc}]/u;

/**
 * The rule for `cache-key-prefix`, the one the settings check: at most 200 characters, none of
 * them a comma, a space or a control character. Stricter than what the service takes (cacheKey
 * below guards only that), and short enough that `<prefix>-v1-<kind>-<64 hex>` always fits
 * MAX_KEY_LENGTH for any source kind (checkSourceList keeps kinds to 32 characters).
 */
export const KEY_PREFIX_RULE = 'at most 200 characters without commas or spaces';

export function isKeyPrefix(prefix: string): boolean {
  return prefix.length > 0 && prefix.length <= 200 && !/[\s,\p{Cc}]/u.test(prefix);
}

/**
 * `<prefix>-<LAYOUT_VERSION>-<source>-<contentDigest>`: one entry per model, named by the bytes it
 * holds, so every workflow and branch pulling the same content shares it, and a different file
 * selection (another include filter) is a different entry.
 */
export function cacheKey(prefix: string, identity: Identity): string {
  checkPrefix(prefix);
  const digest = contentHex(identity);
  const key = `${prefix}-${LAYOUT_VERSION}-${identity.source}-${digest}`;
  if (key.length > MAX_KEY_LENGTH) {
    throw new ModelPullError(
      'ERR_BAD_INPUT',
      `cache-key-prefix: the cache key would be ${key.length} characters, more than the ${MAX_KEY_LENGTH} ` +
        `the Actions cache accepts; use a prefix of at most ${MAX_KEY_LENGTH - (key.length - prefix.length)} characters`,
    );
  }
  return key;
}

function checkPrefix(prefix: string): void {
  if (prefix.trim() === '') {
    throw new ModelPullError('ERR_BAD_INPUT', 'cache-key-prefix: must not be empty');
  }
  if (FORBIDDEN.test(prefix)) {
    throw new ModelPullError(
      'ERR_BAD_INPUT',
      `cache-key-prefix: ${JSON.stringify(prefix)} contains a comma or a control character, ` +
        'which Actions cache keys cannot hold',
    );
  }
}

/** Accepts the hex or `sha256:<hex>`; the key always carries the bare hex so it never changes form. */
function contentHex(identity: Identity): string {
  const hex = identity.contentDigest.replace(/^sha256:/, '');
  if (!isSha256Hex(hex)) {
    throw new ModelPullError(
      'ERR_BAD_INPUT',
      `${identity.ref}: cannot name its cache entry, the content digest ${JSON.stringify(identity.contentDigest)} ` +
        'is not a sha256 hex digest',
    );
  }
  return hex;
}
