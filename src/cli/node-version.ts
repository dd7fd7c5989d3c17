/**
 * The oldest Node the CLI runs on, as package.json's `engines` says: undici 8 needs 22.19, and
 * the cache restore needs zlib's zstd. This module imports nothing, so the check runs before
 * any bundled dependency is evaluated (an older Node would crash there with a stack trace).
 */
export const MIN_NODE = [22, 19] as const;

/** The one line to print when `version` (`process.versions.node`) is too old; else undefined. */
export function nodeTooOld(version: string): string | undefined {
  const [major = 0, minor = 0] = version.split('.').map((part) => Number.parseInt(part, 10) || 0);
  const [needMajor, needMinor] = MIN_NODE;
  if (major > needMajor || (major === needMajor && minor >= needMinor)) return undefined;
  return `model-pull needs Node ≥ ${needMajor}.${needMinor} (this is ${version})\n`;
}
