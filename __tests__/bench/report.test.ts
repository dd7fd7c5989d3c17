import { type CaseResult, evaluate } from '../../bench/report.js';
import { restoreReport } from '../../bench/restore.js';
import type { Measurement } from '../../bench/tools.js';

const MiB = 1024 * 1024;
const run = (peakMiB: number): Measurement => ({ wallMs: 4000, peakRssKiB: peakMiB * 1024 });
const result = (id: CaseResult['id'], ours: number, floor?: number): CaseResult => ({
  id,
  title: id,
  rivalName: 'rival',
  ours: [run(ours)],
  rival: [],
  ...(floor === undefined ? {} : { floor: { name: 'one file', runs: [run(floor)] } }),
});
const rssTarget = (results: CaseResult[]) =>
  evaluate(results, 1024 * MiB).find((t) => t.name.startsWith('4 peak RSS'));

// Issue 17 bounds the peak RSS of every case, the whole-pipeline pulls (oci:, hf:) included.
test('the peak RSS target is the highest of every leg of ours, oci and files included', () => {
  const engineOnly = [result('capped', 70), result('uncapped', 68)];
  expect(rssTarget(engineOnly)).toMatchObject({ value: '70.0 MiB', met: true });
  expect(rssTarget([...engineOnly, result('oci', 81)])).toMatchObject({ value: '81.0 MiB', met: false });
  expect(rssTarget([...engineOnly, result('files', 76, 83)])).toMatchObject({
    value: '83.0 MiB',
    met: false,
  });
});

// --no-rivals leaves the restoreCache leg out: its row and ratio say so instead of NaN and MISSED.
test('the restore table names a leg that did not run as not measured', () => {
  const entry = { key: 'k', archive: 'a', archiveSize: 1024 * MiB, target: 't', workspace: 'w' };
  const leg = (wallMs: number): Measurement => ({ wallMs, cpuMs: wallMs / 2, peakRssKiB: 70 * 1024 });
  const table = restoreReport({ ours: [leg(4800)], cold: [leg(4400)], baseline: [] }, entry);
  expect(table).not.toMatch(/NaN/);
  expect(table).toContain('| @actions/cache restoreCache + sha256 pass | not measured | — | 0 | — |');
  expect(table).toContain('| restore / (restoreCache + verify) | — | ≤ 0.5× | not measured |');
  expect(table).toContain('| restore / cold pull | 1.091× | ≤ 1.1× | met |');
});
