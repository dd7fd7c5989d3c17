import { ModelPullError } from '../../errors.js';
import { type HttpResponse, statusError } from '../../http/client.js';
import { parseRetryAfter } from '../../http/retry.js';

/** What a failed Hub request was about, so its error can say what to do next. */
export interface HubSubject {
  /** e.g. `model Qwen/Qwen2.5-0.5B`, `dataset owner/name`. */
  readonly label: string;
  /** The repository's page on the endpoint, where gated terms are accepted. */
  readonly pageUrl: string;
  readonly revision?: string;
  readonly path?: string;
  readonly tokenGiven: boolean;
}

/**
 * Turns a non-2xx Hub answer into an error a user can act on. The Hub names the cause in
 * `X-Error-Code` (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo) and answers 401 for
 * private, gated and missing repos alike when no token is sent (docs/registries.md, "Hugging Face Hub").
 */
export async function hubError(response: HttpResponse, subject: HubSubject): Promise<ModelPullError> {
  const status = response.status;
  // 5xx keeps the generic, retryable status error (it carries the body's first words).
  if (status >= 500) return statusError(response);
  await response.body.dump().catch(() => undefined);
  const host = new URL(response.url).host;
  if (status === 429) return rateLimited(response, host);
  return (
    byErrorCode(header(response, 'x-error-code'), status, subject) ??
    byStatus(status, host, subject, header(response, 'x-error-message'))
  );
}

/** 429 carries the wait the Hub asked for (Retry-After, or `RateLimit: "api";r=0;t=55`). */
function rateLimited(response: HttpResponse, host: string): ModelPullError {
  const status = response.status;
  const after = parseRetryAfter(response.headers);
  return new ModelPullError(
    'ERR_RATE_LIMITED',
    `${host} rate-limited this runner (HTTP 429${after === undefined ? '' : `, retry after ${after} s`}); ` +
      'a token (hf-token or HF_TOKEN) raises the limit',
    after === undefined ? { status } : { status, retryAfterSeconds: after },
  );
}

function byErrorCode(
  code: string | undefined,
  status: number,
  subject: HubSubject,
): ModelPullError | undefined {
  const { label, tokenGiven } = subject;
  const opts = { status };
  if (code === 'GatedRepo') {
    const how = tokenGiven
      ? 'and check that the token (hf-token or HF_TOKEN) belongs to the account that accepted them'
      : 'and provide a token (hf-token or HF_TOKEN)';
    const message = `${label} is gated: accept the terms on the model page (${subject.pageUrl}) ${how}`;
    return new ModelPullError('ERR_GATED_REPO', message, opts);
  }
  if (code === 'RevisionNotFound') {
    const message = `revision "${subject.revision ?? '?'}" not found in ${label}: check the branch, tag or commit`;
    return new ModelPullError('ERR_REVISION_NOT_FOUND', message, opts);
  }
  if (code === 'EntryNotFound') {
    const what = subject.path === undefined ? 'a file' : `file "${subject.path}"`;
    return new ModelPullError('ERR_NOT_FOUND', `${what} not found in ${label}`, opts);
  }
  // Without a token the Hub cannot tell private from missing, and says 401 for both.
  if (code === 'RepoNotFound' || ((status === 401 || status === 404) && !tokenGiven)) {
    const how = tokenGiven
      ? 'check the name, or that the token given has access'
      : 'check the name, or provide a token with access (hf-token or HF_TOKEN)';
    return new ModelPullError('ERR_NOT_FOUND', `${label} not found, or private: ${how}`, opts);
  }
  return undefined;
}

function byStatus(
  status: number,
  host: string,
  subject: HubSubject,
  said: string | undefined,
): ModelPullError {
  const detail = said ? `: ${said.replace(/\s+/g, ' ').slice(0, 200)}` : '';
  const opts = { status };
  if (status === 401) {
    return new ModelPullError(
      'ERR_AUTH',
      `${host} refused the token (HTTP 401${detail}): check hf-token or HF_TOKEN`,
      opts,
    );
  }
  if (status === 403) {
    const message = `${host} denied access to ${subject.label} (HTTP 403${detail}): the token lacks permission for this repository`;
    return new ModelPullError('ERR_AUTH', message, opts);
  }
  if (status === 404) {
    return new ModelPullError(
      'ERR_NOT_FOUND',
      `${subject.label}: not found on ${host} (HTTP 404${detail})`,
      opts,
    );
  }
  return new ModelPullError(
    'ERR_HTTP_STATUS',
    `HTTP ${status} from ${host} for ${subject.label}${detail}`,
    opts,
  );
}

function header(response: HttpResponse, name: string): string | undefined {
  const value = response.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
