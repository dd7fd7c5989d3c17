import { setFlagsFromString } from 'node:v8';

/**
 * Detaches an ArrayBuffer, so that its memory goes back to the allocator now (where the next
 * allocation of its size finds it, without fresh pages to fault in). Every view of it reads as
 * empty afterwards: only for a buffer nothing else holds, and that native code (a write in
 * flight) no longer reads.
 */
export function freeMemory(buffer: ArrayBufferLike): void {
  const detachable = buffer as ArrayBufferLike & { transfer?: (length: number) => ArrayBuffer };
  if (!detachable.transfer) return;
  try {
    detachable.transfer(0);
  } catch {
    // Not detachable (a shared or external buffer): the collector frees it later.
  }
}

/**
 * Frees the memory under `view` when the view spans all of it (then no other view can depend on
 * it). Socket reads are 64 KiB buffers that V8 only reclaims once tens of MiB of them have piled
 * up; freeing each as soon as it is used keeps them out of the peak RSS.
 */
export function freeWhole(view: Buffer): void {
  if (view.byteOffset === 0 && view.byteLength === view.buffer.byteLength) freeMemory(view.buffer);
}

/**
 * Keeps V8's young generation small (its new space at 2 MiB, one step above where it starts) for
 * the whole run. V8 doubles it whenever enough objects have survived its scavenges, up to 64-128
 * MiB, and does not give it back: a pull's short-lived objects (chunks' wrappers, promises,
 * timers) grew it to 8 MiB semi-spaces, ~16 MiB of RSS, within seconds. Measured on the many-files repo (whole
 * CLI): peak RSS 91 -> 80 MiB, 15 scavenges of up to 8 MiB against ~76 of 1 MiB (1-3 ms each).
 * `--max-semi-space-size` would say it directly but is read only when the heap is set up (a
 * node option, which neither the action's runner nor an npm bin can pass); the growth factor is
 * read at each growth, so it takes effect from an entry point. Called by the entry points only.
 */
export function keepYoungGenerationSmall(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
}
