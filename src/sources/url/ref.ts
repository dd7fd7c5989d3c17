import { isSha256Hex } from '../../digest.js';
import { badLine, type LineParts, onlyOptions } from '../../refs/line.js';

/** A plain file: `https://host/path/file.gguf sha256=<64 hex>`. */
export interface UrlRef {
  readonly line: string;
  /** The URL without userinfo (credentials are in `basicAuth`, bound to its origin). */
  readonly url: string;
  readonly sha256: string;
  /** The file name it lands under in files-dir. */
  readonly fileName: string;
}

export function parseUrlRef(parts: LineParts): UrlRef {
  const { line } = parts;
  onlyOptions(parts, ['sha256']);
  let url: URL;
  try {
    url = new URL(parts.reference);
  } catch {
    throw badLine(line, 'not a valid URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw badLine(line, 'only http(s) URLs can be fetched');
  const sha256 = parts.options.get('sha256')?.toLowerCase();
  if (sha256 === undefined) throw badLine(line, 'a URL needs sha256=<64 hex> so the file can be verified');
  if (!isSha256Hex(sha256)) throw badLine(line, 'sha256= must be 64 hexadecimal characters');
  // The line is echoed in logs, outputs and the lock file, so it must never carry a secret.
  if (url.username || url.password) {
    throw badLine(
      line,
      'credentials in a URL would end up in logs, outputs and the lock file; remove user:password@',
    );
  }
  url.hash = '';
  const fileName = fileNameOf(url);
  if (!fileName) throw badLine(line, 'the URL path names no file');
  return { line, url: url.toString(), sha256, fileName };
}

/** The last path segment, decoded, if it is a safe single file name. */
function fileNameOf(url: URL): string | undefined {
  const last = url.pathname.split('/').pop() ?? '';
  let name: string;
  try {
    name = decodeURIComponent(last);
  } catch {
    return undefined;
  }
  if (!name || name === '.' || name === '..' || /[/\\\0]/.test(name) || name.startsWith('.'))
    return undefined;
  return name;
}
