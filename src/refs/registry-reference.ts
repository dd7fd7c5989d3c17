import { sha256HexOf } from '../digest.js';
import { badLine } from './line.js';

/** A registry reference (`ollama:`, `oci:`) cut into its parts, before each source's own rules. */
export interface ReferenceParts {
  /** Only when the line writes `http://` or `https://`. */
  readonly scheme?: 'http' | 'https';
  /** What is left: `[host/]path`. */
  readonly name: string;
  /** After the last `:` that follows the last `/`; may be '' (the source says why that is wrong). */
  readonly tag?: string;
  /** The 64 lowercase hex of an `@sha256:` pin. */
  readonly pin?: string;
}

/**
 * Cuts `[scheme://]name[:tag][@sha256:<64 hex>]` the way Docker and Ollama read image names
 * (docs/registries.md, "Names and addresses"): `@` never appears in a name part, so the last one
 * starts the pin; the tag is split off only when the last `:` comes after the last `/`, so
 * `host:port/ns/m` keeps its port (a `/` never appears in a tag). Errors quote the line.
 */
export function cutReference(line: string, text: string): ReferenceParts {
  let rest = text;
  let pin: string | undefined;
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    const digest = rest.slice(at + 1);
    pin = sha256HexOf(digest);
    if (pin === undefined) {
      throw badLine(
        line,
        `a pin must be @sha256: followed by 64 lowercase hex digits, got "@${clip(digest)}"`,
      );
    }
    rest = rest.slice(0, at);
  }
  let scheme: ReferenceParts['scheme'];
  const s = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(rest);
  if (s) {
    const given = s[1]!.toLowerCase();
    if (given !== 'http' && given !== 'https') {
      throw badLine(line, `unsupported scheme "${s[1]}://" (use http:// or https://)`);
    }
    scheme = given;
    rest = rest.slice(s[0].length);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  return {
    ...(scheme ? { scheme } : {}),
    name: rest,
    ...(tag === undefined ? {} : { tag }),
    ...(pin === undefined ? {} : { pin }),
  };
}

export function clip(text: string): string {
  return text.length > 60 ? `${text.slice(0, 60)}…` : text;
}
