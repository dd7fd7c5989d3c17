/**
 * Runs `fn` over the items in order, each outcome its own. `limit` bounds how many run at once,
 * or, with a weight, their summed weights (an item heavier than the limit runs alone): the next
 * item starts as soon as it fits, never overtaken by a later, lighter one.
 */
export async function poolSettled<T, R>(
  items: readonly T[],
  limit: number | { readonly limit: number; readonly weight: (item: T) => number },
  fn: (item: T) => Promise<R>,
): Promise<PromiseSettledResult<R>[]> {
  const { limit: capacity, weight } = typeof limit === 'number' ? { limit, weight: () => 1 } : limit;
  const results: PromiseSettledResult<R>[] = new Array(items.length);
  const running = new Set<Promise<void>>();
  let used = 0;
  for (let i = 0; i < items.length; i++) {
    const item = items[i]!;
    const w = Math.min(Math.max(1, capacity), weight(item));
    while (running.size > 0 && used + w > capacity) await Promise.race(running);
    used += w;
    const run: Promise<void> = fn(item).then(
      (value) => {
        results[i] = { status: 'fulfilled', value };
      },
      (reason: unknown) => {
        results[i] = { status: 'rejected', reason };
      },
    );
    const done = run.finally(() => {
      used -= w;
      running.delete(done);
    });
    running.add(done);
  }
  await Promise.all(running);
  return results;
}
