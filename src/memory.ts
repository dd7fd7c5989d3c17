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
