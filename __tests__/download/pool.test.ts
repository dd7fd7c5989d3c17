import { poolSettled } from '../../src/download/pool.js';

/** A task per item that stays open until released, recording what ran at once. */
function gate() {
  const open = new Map<string, () => void>();
  const started: string[] = [];
  const fn = (item: { name: string }) =>
    new Promise<string>((resolve, reject) => {
      started.push(item.name);
      open.set(item.name, () =>
        item.name.startsWith('bad') ? reject(new Error(item.name)) : resolve(item.name),
      );
    });
  const release = async (name: string) => {
    open.get(name)!();
    open.delete(name);
    // Let the pool see the end and start what now fits.
    for (let i = 0; i < 5; i++) await Promise.resolve();
  };
  const running = () => [...open.keys()];
  return { fn, release, running, started };
}

test('a plain limit runs that many at once, in order', async () => {
  const g = gate();
  const items = ['a', 'b', 'c', 'd'].map((name) => ({ name }));
  const all = poolSettled(items, 2, g.fn);
  await Promise.resolve();
  expect(g.running()).toEqual(['a', 'b']);
  await g.release('b');
  expect(g.running()).toEqual(['a', 'c']);
  await g.release('a');
  await g.release('c');
  await g.release('d');
  expect((await all).map((r) => r.status === 'fulfilled' && r.value)).toEqual(['a', 'b', 'c', 'd']);
});

test('weights share the limit: light items run side by side, a heavy one waits for room and is never overtaken', async () => {
  const g = gate();
  const weights: Record<string, number> = { big1: 4, s1: 1, s2: 1, big2: 4, s3: 1, bad: 1 };
  const items = Object.keys(weights).map((name) => ({ name }));
  const all = poolSettled(items, { limit: 6, weight: (i) => weights[i.name]! }, g.fn);
  await Promise.resolve();
  // 4 + 1 + 1 fill the limit; big2 (4) does not fit, and s3 (1) does not jump ahead of it.
  expect(g.running()).toEqual(['big1', 's1', 's2']);
  await g.release('s1');
  expect(g.running()).toEqual(['big1', 's2']);
  await g.release('big1');
  expect(g.running()).toEqual(['s2', 'big2', 's3']);
  await g.release('s3');
  expect(g.running()).toEqual(['s2', 'big2', 'bad']);
  await g.release('bad');
  await g.release('s2');
  await g.release('big2');
  const outcomes = await all;
  expect(outcomes.map((r) => r.status)).toEqual([
    'fulfilled',
    'fulfilled',
    'fulfilled',
    'fulfilled',
    'fulfilled',
    'rejected',
  ]);
  expect(g.started).toEqual(['big1', 's1', 's2', 'big2', 's3', 'bad']);
});

test('an item heavier than the limit runs alone', async () => {
  const g = gate();
  const items = [{ name: 'huge' }, { name: 'small' }];
  const all = poolSettled(items, { limit: 2, weight: (i) => (i.name === 'huge' ? 10 : 1) }, g.fn);
  await Promise.resolve();
  expect(g.running()).toEqual(['huge']);
  await g.release('huge');
  expect(g.running()).toEqual(['small']);
  await g.release('small');
  expect((await all).every((r) => r.status === 'fulfilled')).toBe(true);
});

test('no items: nothing runs', async () => {
  expect(await poolSettled([], 4, async () => 1)).toEqual([]);
});
