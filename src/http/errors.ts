import { ModelPullError, redactUrl } from '../errors.js';

/**
 * Errors whose only cure is a different certificate setup: Node's and OpenSSL's verification
 * codes (UNABLE_TO_VERIFY_LEAF_SIGNATURE, SELF_SIGNED_CERT_IN_CHAIN, CERT_HAS_EXPIRED,
 * ERR_TLS_CERT_ALTNAME_INVALID, …).
 */
const TLS_CODE = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)/;

/** `name[:port]` of a URL, for errors and retry lines; undefined when it does not parse. */
export function hostOf(url: string): string | undefined {
  try {
    return new URL(url).host;
  } catch {
    return undefined;
  }
}

/** A request or body that brought no byte for the stall timeout (every transport says it so). */
export function stalledError(url: string, cause?: unknown): ModelPullError {
  return new ModelPullError('ERR_STALLED', `no data from ${redactUrl(url)} within the stall timeout`, {
    ...(cause === undefined ? {} : { cause }),
    host: hostOf(url),
  });
}

/**
 * Maps a thrown undici/socket error to our codes. Stalls, resets and refused connections are
 * worth a retry (the last only a few); a name that does not resolve, a refused certificate or an
 * invalid header value are not, and fail at once.
 */
export function networkError(error: unknown, url: string): ModelPullError {
  if (error instanceof ModelPullError) return error;
  const code = errorCode(error);
  const name = (error as { name?: string })?.name ?? '';
  const host = hostOf(url);
  const where = redactUrl(url);
  const opts = { cause: error, host };
  if (name === 'AbortError' || code === 'UND_ERR_ABORTED' || code === 'ABORT_ERR') {
    return new ModelPullError('ERR_ABORTED', `request to ${where} was aborted`, opts);
  }
  if (code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT') {
    return stalledError(url, error);
  }
  // Not `instanceof Error`: errors from another realm (a VM context, a worker) fail that test.
  const message = (error as { message?: unknown })?.message;
  const detail = typeof message === 'string' && message ? message : String(error);
  if (code === 'ENOTFOUND') {
    const hostname = host ? new URL(url).hostname : 'the host';
    return new ModelPullError(
      'ERR_DNS',
      `network error from ${where}: ${hostname} does not resolve (${code})`,
      opts,
    );
  }
  if (code === 'ECONNREFUSED') {
    return new ModelPullError('ERR_CONNECTION_REFUSED', `network error from ${where}: ${detail}`, opts);
  }
  if (TLS_CODE.test(code)) {
    // Node's own text suggests --use-system-ca, which a user of the action cannot pass.
    return new ModelPullError(
      'ERR_TLS',
      `network error from ${where}: its certificate was refused (${code}); if the server uses a private or self-signed CA, trust it with ca-cert (--ca-cert)`,
      opts,
    );
  }
  if (
    code === 'UND_ERR_INVALID_ARG' ||
    code === 'ERR_INVALID_CHAR' ||
    code === 'ERR_HTTP_INVALID_HEADER_VALUE'
  ) {
    return new ModelPullError('ERR_BAD_INPUT', `cannot send the request to ${where}: ${detail}`, opts);
  }
  return new ModelPullError('ERR_NETWORK', `network error from ${where}: ${detail}`, opts);
}

/** The error's own code, or its cause's (a proxy or fetch-style wrapper keeps the socket's there). */
function errorCode(error: unknown): string {
  const own = (error as { code?: unknown })?.code;
  if (typeof own === 'string' && own !== 'UND_ERR_SOCKET') return own;
  const inner = (error as { cause?: { code?: unknown } })?.cause?.code;
  if (typeof inner === 'string') return inner;
  return typeof own === 'string' ? own : '';
}
