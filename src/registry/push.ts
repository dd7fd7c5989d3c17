import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { sha256Hex } from '../digest.js';
import { isModelPullError, ModelPullError, redactUrl } from '../errors.js';
import { discardBody, type HttpResponse, statusError } from '../http/client.js';
import { nextRetry, retryEvent, withRetries } from '../http/retry.js';
import type { RegistryCall } from './client.js';
import type { RegistrySession, SessionRequest } from './session.js';
import { noUploadRecords, type UploadRecords } from './uploads.js';

const MiB = 1024 * 1024;

/**
 * A blob to push: a local file that holds exactly its bytes (a verified store entry), or bytes
 * in memory (a config written for the push).
 */
export interface LocalBlob {
  /** sha256 hex of the bytes. */
  readonly hex: string;
  readonly size: number;
  /** Where the bytes are, or where they were made for (named in errors). */
  readonly path: string;
  /** The bytes themselves, when they are not in a file. */
  readonly bytes?: Uint8Array;
  /** Names the blob in errors and retry lines. */
  readonly label: string;
}

/** Bytes [start, end) of a blob as a fresh stream. */
function bytesOf(blob: LocalBlob, start = 0, end = blob.size): Readable {
  if (end <= start) return Readable.from([]);
  if (blob.bytes) return Readable.from([Buffer.from(blob.bytes.subarray(start, end))]);
  return createReadStream(blob.path, { start, end: end - 1 });
}

export interface PushTuning {
  /** Blobs up to this size go in one PUT; larger ones in PATCH chunks, resumable. */
  readonly monolithicMax: number;
  /** Bytes per PATCH (raised to the registry's `OCI-Chunk-Min-Length` when it names one). */
  readonly chunkSize: number;
  /** Where an interrupted chunked upload is found again by the next run. */
  readonly uploads: UploadRecords;
  /** Told of every upload byte the registry accepted. */
  readonly onBytes?: (n: number) => void;
}

export const DEFAULT_PUSH_TUNING: PushTuning = {
  monolithicMax: 32 * MiB,
  chunkSize: 64 * MiB,
  uploads: noUploadRecords,
};

/** How a blob got there: already present, mounted from another repository, or sent. */
export type BlobOutcome = 'present' | 'mounted' | 'uploaded';

export interface PushedBlob {
  readonly hex: string;
  readonly outcome: BlobOutcome;
  /** Body bytes this run sent (a resumed upload sends only the rest). */
  readonly sentBytes: number;
}

/**
 * A registry's answer to the digest given at the end of an upload: the bytes it received hash
 * to something else (the file changed under us). Resending would not help.
 */
const DIGEST_REFUSED = /DIGEST_INVALID|BLOB_UPLOAD_INVALID/;

/** Waiting for the answer to the last byte of an upload: the registry may hash the whole blob. */
const FINISH_TIMEOUT_MS = 10 * 60_000;

/**
 * Pushes one blob (docs/registries.md, "Pushing"): nothing when the registry has it (`HEAD`);
 * a cross-repository mount when `mountFrom` names a repository of the same registry that holds
 * it; else an upload, resumed where a previous run left it (the registry says how many bytes
 * it holds), in one `PUT` for small blobs or in `PATCH` chunks that can resume.
 */
export async function pushBlob(
  session: RegistrySession,
  call: RegistryCall,
  blob: LocalBlob,
  tuning: PushTuning,
  mountFrom?: string,
): Promise<PushedBlob> {
  if (await blobExists(session, call, blob)) return { hex: blob.hex, outcome: 'present', sentBytes: 0 };
  const upload = new BlobUpload(session, call, blob, tuning);
  const resumed = await upload.resume();
  if (!resumed) {
    const mounted = await upload.start(mountFrom);
    if (mounted) return { hex: blob.hex, outcome: 'mounted', sentBytes: 0 };
  }
  await upload.send();
  return { hex: blob.hex, outcome: 'uploaded', sentBytes: upload.sent };
}

/** An image or artifact to push: its blobs from local files, then its manifest under references. */
export interface LocalArtifact {
  readonly blobs: readonly LocalBlob[];
  readonly manifest: { readonly bytes: Uint8Array; readonly mediaType: string };
  /** Tags (or `sha256:` digests) the manifest is put under, in order. */
  readonly references: readonly string[];
  /** The artifact as users name it, for messages. */
  readonly name: string;
}

export interface PushedArtifact {
  readonly blobs: readonly PushedBlob[];
  /** The manifest digest (hex) as the registry reports it. */
  readonly digest: string;
}

/**
 * Pushes an artifact: several blobs at once (each skipped, mounted or uploaded), and only once
 * every blob is there, the manifest under each reference, so a tag never names a blob the
 * registry lacks. `mountFrom` names, per blob, a repository of the same registry that holds it.
 */
export async function pushArtifact(
  session: RegistrySession,
  call: RegistryCall,
  artifact: LocalArtifact,
  tuning: PushTuning & { readonly concurrency: number },
  mountFrom: (hex: string) => string | undefined = () => undefined,
): Promise<PushedArtifact> {
  const unique = [...new Map(artifact.blobs.map((b) => [b.hex, b])).values()];
  const blobs: PushedBlob[] = new Array(unique.length);
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (next < unique.length && !failed) {
      const i = next++;
      const blob = unique[i]!;
      try {
        blobs[i] = await pushBlob(session, call, blob, tuning, mountFrom(blob.hex));
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(tuning.concurrency, unique.length)) }, worker));
  let digest = sha256Hex(artifact.manifest.bytes);
  for (const reference of artifact.references)
    digest = await putManifest(
      session,
      call,
      reference,
      artifact.manifest,
      `${artifact.name} (${reference})`,
    );
  return { blobs, digest };
}

/**
 * Puts a manifest under a tag or digest, exactly these bytes (its digest is theirs); returns
 * the digest the registry reports, which differs only where a registry rewrites manifests.
 */
export async function putManifest(
  session: RegistrySession,
  call: RegistryCall,
  reference: string,
  manifest: { readonly bytes: Uint8Array; readonly mediaType: string },
  name: string,
): Promise<string> {
  const hex = sha256Hex(manifest.bytes);
  return withRetries(
    async () => {
      const answer = await session.request(call, `manifests/${reference}`, {
        method: 'PUT',
        headers: { 'content-type': manifest.mediaType, 'content-length': String(manifest.bytes.length) },
        body: () => manifest.bytes,
      });
      if (answer.status !== 201 && answer.status !== 200)
        throw await statusError(answer, `${session.registry.host} for the manifest of ${name}`);
      discardBody(answer.body);
      const reported = /^sha256:([0-9a-f]{64})$/.exec(String(answer.headers['docker-content-digest'] ?? ''));
      return reported ? reported[1]! : hex;
    },
    call.retry,
    retryOptions(call, `the manifest of ${name}`),
  );
}

/** `HEAD blobs/<digest>`: 200 (or a redirect to where it is stored) means the registry has it. */
async function blobExists(session: RegistrySession, call: RegistryCall, blob: LocalBlob): Promise<boolean> {
  return withRetries(
    async () => {
      const answer = await session.request(call, `blobs/sha256:${blob.hex}`, {
        method: 'HEAD',
        maxRedirects: 0,
      });
      discardBody(answer.body);
      if (answer.status === 404) return false;
      if (answer.status === 200 || (answer.status >= 300 && answer.status < 400)) {
        const length = Number(answer.headers['content-length']);
        return answer.status !== 200 || !Number.isFinite(length) || length === blob.size;
      }
      throw await statusError(answer, `${session.registry.host} for ${blob.label}`);
    },
    call.retry,
    retryOptions(call, blob.label),
  );
}

function retryOptions(call: RegistryCall, subject: string) {
  return { clock: call.clock, subject, ...(call.signal ? { signal: call.signal } : {}) };
}

/** The upload of one blob: its URL (which the registry may change at every step) and offset. */
class BlobUpload {
  private location = '';
  private offset = 0;
  private chunkSize: number;
  /** Uploads the registry dropped under us since it last took a chunk (see dropped). */
  private restarts = 0;
  sent = 0;

  constructor(
    private readonly session: RegistrySession,
    private readonly call: RegistryCall,
    private readonly blob: LocalBlob,
    private readonly tuning: PushTuning,
  ) {
    this.chunkSize = tuning.chunkSize;
  }

  private get key(): [string, string, string] {
    return [this.session.registry.origin, this.session.repository, this.blob.hex];
  }

  /** Picks up the upload a previous run recorded, when the registry still knows it. */
  async resume(): Promise<boolean> {
    const recorded = await this.tuning.uploads.get(...this.key);
    if (!recorded) return false;
    const status = await this.status(recorded).catch((error: unknown) => {
      if (isModelPullError(error, 'ERR_ABORTED')) throw error;
      return undefined;
    });
    if (!status || status.offset === 0 || status.offset > this.blob.size) {
      await this.tuning.uploads.forget(...this.key);
      return false;
    }
    this.location = status.location;
    this.offset = status.offset;
    this.call.log.info(
      `${this.blob.label}: resuming the upload to ${this.session.registry.host} at byte ${status.offset} of ${this.blob.size}`,
    );
    return true;
  }

  /**
   * Opens an upload (`POST blobs/uploads/`), or mounts the blob from `mountFrom`: 201 means
   * mounted, 202 that the registry opened an upload instead (it may not share across
   * repositories, or the token may not read the other one).
   */
  async start(mountFrom?: string): Promise<boolean> {
    const query = mountFrom ? `?mount=sha256:${this.blob.hex}&from=${encodeURIComponent(mountFrom)}` : '';
    const answer = await withRetries(
      async () => {
        const response = await this.session.request(this.call, `blobs/uploads/${query}`, {
          method: 'POST',
          headers: { 'content-length': '0' },
        });
        if (response.status !== 201 && response.status !== 202)
          throw await statusError(
            response,
            `${this.session.registry.host} opening an upload of ${this.blob.label}`,
          );
        discardBody(response.body);
        return response;
      },
      this.call.retry,
      retryOptions(this.call, this.blob.label),
    );
    if (answer.status === 201) return true;
    this.location = locationOf(answer, this.blob.label);
    this.offset = 0;
    const min = Number(answer.headers['oci-chunk-min-length']);
    if (Number.isSafeInteger(min) && min > this.chunkSize) this.chunkSize = min;
    if (this.blob.size > this.tuning.monolithicMax) await this.tuning.uploads.set(...this.key, this.location);
    return false;
  }

  /** Sends what the registry lacks, then closes the upload with the digest. */
  async send(): Promise<void> {
    if (this.offset === 0 && this.blob.size <= this.tuning.monolithicMax) {
      await this.whole();
    } else {
      // Until the closing PUT commits (it says false when the registry dropped the upload).
      do await this.chunks();
      while (!(await this.finish()));
    }
    await this.tuning.uploads.forget(...this.key);
  }

  /** One `PUT ?digest=` with the whole blob; a failed attempt opens a fresh upload. */
  private async whole(): Promise<void> {
    await withRetries(
      async () => {
        if (!this.location) await this.start();
        try {
          await this.close(this.blob.size, () => bytesOf(this.blob));
          this.sent += this.blob.size;
          this.tuning.onBytes?.(this.blob.size);
        } catch (error) {
          this.location = '';
          throw error;
        }
      },
      this.call.retry,
      retryOptions(this.call, this.blob.label),
    );
  }

  /**
   * `PATCH` chunks from the offset to the end. After a failure the registry is asked how much
   * it holds (`GET` the upload) and the next chunk starts there; failures in a row are bounded
   * by the retry policy, and any progress restores the budget.
   */
  private async chunks(): Promise<void> {
    let failures = 0;
    while (this.offset < this.blob.size) {
      const start = this.offset;
      try {
        await this.patch(start, Math.min(this.blob.size, start + this.chunkSize));
        failures = 0;
      } catch (error) {
        if (this.call.signal?.aborted) throw error;
        failures = this.offset > start ? 1 : failures + 1;
        const plan = nextRetry(error, failures, this.call.retry);
        if (!plan) throw error;
        const host = this.session.registry.host;
        this.call.retry.onRetry?.(
          retryEvent(error as ModelPullError, failures, plan, { host, subject: this.blob.label }),
        );
        await this.call.clock.sleep(plan.delayMs, this.call.signal);
        await this.resync();
      }
    }
  }

  private async patch(start: number, end: number): Promise<void> {
    const answer = await this.session.request(this.call, this.location, {
      method: 'PATCH',
      headers: {
        'content-type': 'application/octet-stream',
        'content-length': String(end - start),
        'content-range': `${start}-${end - 1}`,
      },
      body: () => bytesOf(this.blob, start, end),
    });
    if (answer.status === 416) {
      // The registry holds a different number of bytes than we thought: ask it, go on from
      // there; when it names this very offset again (its `0-0` is ambiguous), start afresh.
      discardBody(answer.body);
      await this.resync();
      if (this.offset === start) await this.start();
      return;
    }
    if (answer.status === 404) {
      await this.dropped(await statusError(answer, `${this.session.registry.host} for ${this.blob.label}`));
      return;
    }
    if (answer.status !== 202 && answer.status !== 204)
      throw await statusError(answer, `${this.session.registry.host} for ${this.blob.label}`);
    discardBody(answer.body);
    const held = heldBytes(answer.headers.range);
    this.location = locationOf(answer, this.blob.label, this.location);
    const next = held ?? end;
    if (next < start || next > end) {
      throw new ModelPullError(
        'ERR_BAD_RANGE',
        `${this.session.registry.host} reports ${next} bytes of ${this.blob.label} after a chunk ending at ${end}`,
      );
    }
    this.sent += next - start;
    this.tuning.onBytes?.(next - start);
    this.offset = next;
    this.restarts = 0;
    await this.tuning.uploads.set(...this.key, this.location);
  }

  /** The registry's own count of the upload's bytes; an upload it no longer knows starts over. */
  private async resync(): Promise<void> {
    const status = await this.status(this.location);
    if (status) {
      // Bytes of a cut chunk that the registry kept count as sent.
      if (status.offset > this.offset) {
        this.sent += status.offset - this.offset;
        this.tuning.onBytes?.(status.offset - this.offset);
      }
      this.location = status.location;
      this.offset = status.offset;
      return;
    }
    await this.dropped();
  }

  /**
   * The registry no longer knows the upload (404 to its status, a chunk or the closing PUT):
   * a new one starts from byte 0. docker-registry cancels an upload whose bytes do not match the
   * count in the URL we hold, as when a cut chunk's bytes land after its status said otherwise.
   * Bounded by the retry policy between accepted chunks, so a registry that refuses every upload
   * fails with its answer.
   */
  private async dropped(answer?: ModelPullError): Promise<void> {
    if (++this.restarts > this.call.retry.retries) {
      throw (
        answer ??
        new ModelPullError(
          'ERR_HTTP_STATUS',
          `${this.session.registry.host} dropped the upload of ${this.blob.label} ${this.restarts} times in a row`,
          { host: this.session.registry.host },
        )
      );
    }
    this.call.log.info(`${this.blob.label}: the registry dropped the upload; starting it again`);
    await this.start();
  }

  /** `GET` an upload: `Range: 0-<last byte held>`; undefined when the registry does not know it. */
  private async status(location: string): Promise<{ location: string; offset: number } | undefined> {
    return withRetries(
      async () => {
        const answer = await this.session.request(this.call, location, { maxRedirects: 0 });
        discardBody(answer.body);
        if (answer.status === 404) return undefined;
        if (answer.status !== 204 && answer.status !== 200)
          throw await statusError(
            answer,
            `${this.session.registry.host} for the upload of ${this.blob.label}`,
          );
        // `0-0` is said for both none and one byte: counted as none, the byte is sent again.
        const held = heldBytes(answer.headers.range);
        return {
          location: locationOf(answer, this.blob.label, location),
          offset: held === 1 ? 0 : (held ?? 0),
        };
      },
      this.call.retry,
      retryOptions(this.call, this.blob.label),
    );
  }

  /**
   * Every byte is there: `PUT ?digest=` with no body closes the upload. False when the registry
   * no longer knows it (404): a new one was started, its chunks are sent again.
   */
  private async finish(): Promise<boolean> {
    try {
      await withRetries(
        () => this.close(0, () => ''),
        this.call.retry,
        retryOptions(this.call, this.blob.label),
      );
      return true;
    } catch (error) {
      if (!isModelPullError(error, 'ERR_HTTP_STATUS') || error.status !== 404) throw error;
      await this.dropped(error);
      return false;
    }
  }

  /** `PUT <upload>?digest=sha256:…` with the last bytes (or none); 201 means committed. */
  private async close(length: number, body: NonNullable<SessionRequest['body']>): Promise<void> {
    const url = new URL(this.location);
    url.searchParams.set('digest', `sha256:${this.blob.hex}`);
    const answer = await this.session.request(this.call, url.toString(), {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(length) },
      body,
      answerTimeoutMs: FINISH_TIMEOUT_MS,
    });
    if (answer.status === 201 || answer.status === 204) {
      discardBody(answer.body);
      const reported = /^sha256:([0-9a-f]{64})$/.exec(String(answer.headers['docker-content-digest'] ?? ''));
      if (reported && reported[1] !== this.blob.hex) throw this.refused(`it stored sha256:${reported[1]}`);
      return;
    }
    const error = await statusError(answer, `${this.session.registry.host} for ${this.blob.label}`);
    if (answer.status === 400 && DIGEST_REFUSED.test(error.message)) {
      await this.tuning.uploads.forget(...this.key);
      throw this.refused('the bytes it received hash to another digest');
    }
    throw error;
  }

  private refused(why: string): ModelPullError {
    return new ModelPullError(
      'ERR_DIGEST_MISMATCH',
      `${this.session.registry.host} refused ${this.blob.label} (sha256:${this.blob.hex}): ${why}; was ${this.blob.path} changed?`,
    );
  }
}

/** The upload URL a registry answered with (relative to the request, as the spec allows). */
function locationOf(answer: HttpResponse, label: string, previous?: string): string {
  const location = answer.headers.location;
  if (typeof location !== 'string' || location === '') {
    if (previous) return previous;
    throw new ModelPullError(
      'ERR_BAD_MANIFEST',
      `${new URL(answer.url).host} opened an upload of ${label} without a Location (${redactUrl(answer.url)})`,
    );
  }
  return new URL(location, answer.url).toString();
}

/** `Range: 0-<last>` → bytes held (`last + 1`); undefined when absent or malformed. */
function heldBytes(header: string | string[] | undefined): number | undefined {
  const m = /^(?:bytes=)?0-(\d+)$/.exec(String(header ?? '').trim());
  return m ? Number(m[1]) + 1 : undefined;
}
