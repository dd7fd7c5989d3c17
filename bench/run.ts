// `npm run bench`: issue 2's benchmark. A local server (own process) serves a 1 GiB blob;
// our engine, aria2c and curl + sha256sum fetch and verify it, side by side, several times
// each. Prints the table and which targets were met. Exits non-zero only when the harness
// itself fails (a tool errors, a digest is wrong); a missed target is reported, not fatal.
//
// Options: --runs N (default 3), --size MiB (default 1024), --cases capped,stuck,uncapped,warm,oci,files,restore
// (and stuck-socket: every request on the stuck connection crawls, not only the first;
// files: a Hugging Face repo of the blob cut into many 4 MiB files and two large ones, pulled by
// our CLI against `hf download` and against our CLI on one file of the same size, see hf.ts;
// restore: issue 9's warm restore of a cache entry, see restore.ts; oci: a ModelPack artifact
// whose large layer the registry redirects to the capped server, pulled by the whole oci:
// pipeline against `skopeo copy` into an OCI layout, see oci.ts),
// --no-rivals (ours only, while tuning), --trace (the server logs every request to stderr),
// --engine-root DIR (measure the src/ of another checkout, e.g. before/after a change).
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildChild } from './build.js';
import { ensureBlob } from './data.js';
import { type Expected, expectedDigests, hfDownload, oursHf } from './hf.js';
import { MANY_FILES_REPO, manyFilesLayout, ONE_FILE_REPO, oneFileLayout } from './hf-repos.js';
import { ensureArtifact, OCI_REPOSITORY, OCI_TAG, oursOci, skopeoCopy } from './oci.js';
import { startServerProcess } from './proc.js';
import { type CaseId, type CaseResult, evaluate, table, targetTable } from './report.js';
import { baselineRestore, oursRestore, type RestoreResults, restoreReport, savedEntry } from './restore.js';
import {
  aria2c,
  curlOnly,
  curlThenSha256sum,
  type Measurement,
  opensslDgst,
  ours,
  oursWarm,
  type Tool,
} from './tools.js';

const MiB = 1024 * 1024;
const here = new URL('.', import.meta.url).pathname;

interface CaseDef {
  readonly id: CaseId;
  readonly title: string;
  /** Query string for run `n` (the stuck case needs a fresh token per run). */
  readonly query: (n: number) => string;
  readonly rivalName: string;
  readonly rival: Tool;
  /** Not in the default run (issue 2 names the others); ask with --cases. */
  readonly extra?: boolean;
  /**
   * What ours runs: the engine on the blob's URL (default), an oci: pull of the registry's
   * artifact, a re-verification of the blob in place, or the CLI's hf: pull of the fake Hub's repo.
   */
  readonly ours?: 'engine' | 'oci' | 'warm' | 'hf';
  /** A second reference measured in the same runs: `curl -o` without any verification. */
  readonly floor?: { readonly name: string; readonly tool: Tool };
}

const CAP = `rate=${16 * MiB}`;

/** The files case's tools, made once the server and the build are up (see hf.ts). */
let hfTools: { ours: Tool; rival: Tool; one: Tool } | undefined;
const hfTool =
  (pick: (tools: NonNullable<typeof hfTools>) => Tool): Tool =>
  (url, blob) =>
    pick(hfTools!)(url, blob);

const CASES: readonly CaseDef[] = [
  { id: 'capped', title: '1 capped 16×16 MiB/s', query: () => CAP, rivalName: 'aria2c', rival: aria2c },
  {
    id: 'stuck',
    title: '2 capped, one at 1 MiB/s',
    query: (n) => `${CAP}&slow=run${n}-${Date.now()}&slowRate=${MiB}`,
    rivalName: 'aria2c',
    rival: aria2c,
  },
  {
    id: 'uncapped',
    title: '3 uncapped loopback',
    query: () => '',
    rivalName: 'curl + sha256sum',
    rival: curlThenSha256sum,
    floor: { name: 'curl -o (no verification)', tool: curlOnly },
  },
  {
    id: 'warm',
    title: '6 warm: re-verify 1 GiB in place',
    query: () => '',
    rivalName: 'openssl dgst -sha256',
    rival: opensslDgst,
    ours: 'warm',
  },
  {
    id: 'oci',
    title: '5 oci: ModelPack, weights via the capped CDN',
    query: () => CAP,
    rivalName: 'skopeo copy',
    rival: skopeoCopy,
    ours: 'oci',
  },
  {
    id: 'files',
    title: '8 HF repo of many files, 16 MiB/s per connection',
    query: () => '',
    rivalName: 'hf download (huggingface_hub 2.0.0)',
    rival: hfTool((t) => t.rival),
    ours: 'hf',
    floor: { name: 'model-pull, one file of the same size', tool: hfTool((t) => t.one) },
  },
  {
    id: 'stuck-socket',
    title: '2b capped, one socket at 1 MiB/s',
    query: (n) => `${CAP}&slow=run${n}-${Date.now()}&slowRate=${MiB}&slowScope=socket`,
    rivalName: 'aria2c',
    rival: aria2c,
    extra: true,
  },
];

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    size: { type: 'string', default: '1024' },
    cases: {
      type: 'string',
      default: [...CASES.filter((c) => !c.extra).map((c) => c.id), 'restore'].join(','),
    },
    rivals: { type: 'boolean', default: true },
    'engine-root': { type: 'string', default: `${here}..` },
    trace: { type: 'boolean', default: false },
  },
  allowNegative: true,
});
const runs = Number(values.runs);
const size = Number(values.size) * MiB;
const wanted = new Set(values.cases.split(','));
const cases = CASES.filter((c) => wanted.has(c.id));

const began = performance.now();
const loadStart = loadavg()[0]!.toFixed(2);
const blob = await ensureBlob(`${here}.data`, size);
const entry = wanted.has('restore') ? await savedEntry(`${here}.data`, blob) : undefined;
const artifact = wanted.has('oci') ? await ensureArtifact(`${here}.data`, blob, CAP) : undefined;
const hfRepos = wanted.has('files') ? { many: manyFilesLayout(size), one: oneFileLayout(size) } : undefined;
const server = await startServerProcess(
  `${here}server.ts`,
  blob.path,
  values.trace,
  entry ? { path: entry.archive, rate: 16 * MiB } : undefined,
  artifact,
  hfRepos ? 16 * MiB : undefined,
);
const results: CaseResult[] = [];
let restored: RestoreResults | undefined;
try {
  const build = `${here}../node_modules/.cache/model-pull-bench`;
  const script = await buildChild(values['engine-root'], build);
  const mine = { script, tool: ours(16, script) };
  const mineOci = oursOci(16, join(dirname(script), 'ours-oci.js'));
  const reference = `${new URL(server.url).host}/${OCI_REPOSITORY}:${OCI_TAG}`;
  // huggingface_hub follows a redirect to the same host name as its own (a relative one): the Hub
  // is `localhost` for every tool, its CDN `127.0.0.1`, different hosts as on the real Hub.
  const hubUrl = server.hf?.hub.replace('127.0.0.1', 'localhost');
  if (hfRepos) {
    const cli = join(dirname(script), '..', 'src', 'cli.js');
    const [many, one]: Expected[] = [
      await expectedDigests(hfRepos.many, blob),
      await expectedDigests(hfRepos.one, blob),
    ];
    hfTools = {
      ours: oursHf(cli, MANY_FILES_REPO, many!, 16),
      rival: await hfDownload(MANY_FILES_REPO, many!),
      one: oursHf(cli, ONE_FILE_REPO, one!, 16),
    };
  }
  const oursTool = (c: CaseDef) =>
    c.ours === 'oci'
      ? mineOci
      : c.ours === 'warm'
        ? oursWarm(mine.script)
        : c.ours === 'hf'
          ? hfTool((t) => t.ours)
          : mine.tool;
  for (const c of cases) {
    const measured = { ours: [] as Measurement[], rival: [] as Measurement[], floor: [] as Measurement[] };
    for (let n = 0; n < runs; n++) {
      // Alternate who goes first, so drift (page cache, thermal) does not favour one side.
      const order: ['ours' | 'rival' | 'floor', Tool][] = [['ours', oursTool(c)]];
      if (values.rivals) order.push(['rival', c.rival]);
      // The files case's second reference is ours on one file: it runs with --no-rivals too.
      if (c.floor && (values.rivals || c.ours === 'hf')) order.push(['floor', c.floor.tool]);
      if (n % 2) order.reverse();
      for (const [who, tool] of order) {
        const query = c.query(n * 3 + ['ours', 'rival', 'floor'].indexOf(who));
        // Every download goes through the Hub's resolve/, which redirects to the CDN (/blob).
        const target =
          c.ours === 'oci'
            ? reference
            : c.ours === 'hf'
              ? hubUrl!
              : `${server.url}/resolve/blob${query ? `?${query}` : ''}`;
        await requestCounts(server.url);
        const counted = { ...(await tool(target, blob)), requests: await requestCounts(server.url) };
        // Resolves are judged per file: the files case's repos hold many.
        const files = c.ours === 'hf' ? (who === 'floor' ? hfRepos!.one : hfRepos!.many).length : 1;
        const m = { ...counted, requests: { ...counted.requests, files } };
        measured[who].push(m);
        const name = who === 'ours' ? 'model-pull' : who === 'rival' ? c.rivalName : c.floor?.name;
        const cpu = m.cpuMs === undefined ? '' : `, CPU ${(m.cpuMs / 1000).toFixed(2)} s`;
        process.stderr.write(`${c.id} ${name}: ${(m.wallMs / 1000).toFixed(2)} s${cpu}\n`);
      }
    }
    results.push({
      id: c.id,
      title: c.title,
      rivalName: c.rivalName,
      ours: measured.ours,
      rival: measured.rival,
      ...(c.floor ? { floor: { name: c.floor.name, runs: measured.floor } } : {}),
    });
  }
  if (entry) {
    const tools = {
      ours: oursRestore(join(dirname(mine.script), 'restore-child.js'), server.url, entry, blob),
      cold: () => mine.tool(`${server.url}/blob?${CAP}`, blob),
      baseline: baselineRestore(
        `${here}restore-baseline.ts`,
        `${here}../__tests__/helpers/ts-hooks.mjs`,
        server.url,
        entry,
        blob,
      ),
    };
    const measured = { ours: [] as Measurement[], cold: [] as Measurement[], baseline: [] as Measurement[] };
    for (let n = 0; n < runs; n++) {
      // The baseline streams over one capped connection (over a minute per GiB): two runs at most.
      // --no-rivals (tuning) skips it: the restore's own target is against the cold pull.
      const order = (['ours', 'cold', 'baseline'] as const).filter(
        (w) => w !== 'baseline' || (n < 2 && values.rivals),
      );
      for (const who of n % 2 ? [...order].reverse() : order) {
        const m = await tools[who]();
        measured[who].push(m);
        process.stderr.write(`restore ${who}: ${(m.wallMs / 1000).toFixed(2)} s\n`);
      }
    }
    restored = measured;
  }
} finally {
  await server.stop();
}

/**
 * The bench server's Hub resolve/, CDN and Hub API request counts since the last call (the call
 * resets them).
 */
async function requestCounts(base: string): Promise<{ hub: number; cdn: number; api: number }> {
  const response = await fetch(`${base}/stats`);
  return (await response.json()) as { hub: number; cdn: number; api: number };
}

/** "64 × 4 MiB + 2 × 384 MiB + 3 small": a layout's LFS files by size, then its small files. */
function describe(files: ReturnType<typeof manyFilesLayout>): string {
  const sizes = new Map<number, number>();
  let small = 0;
  for (const f of files) {
    if ('text' in f) small++;
    else sizes.set(f.end - f.start, (sizes.get(f.end - f.start) ?? 0) + 1);
  }
  const lfs = [...sizes].map(([bytes, n]) => `${n} × ${(bytes / MiB).toFixed(0)} MiB`);
  return [...lfs, `${small} small`].join(' + ');
}

const cpu = cpus()[0]?.model ?? 'unknown CPU';
process.stdout.write(
  [
    '',
    `model-pull bench: ${(size / MiB).toFixed(0)} MiB blob, ${runs} runs per tool and case (median shown), ` +
      `${cpus().length} × ${cpu}, Node ${process.version}, ${new Date().toISOString().slice(0, 16)}Z, ` +
      `load average ${loadStart} at the start, ${loadavg()[0]!.toFixed(2)} at the end`,
    '',
    ...(results.length > 0
      ? [
          table(results),
          '',
          "* CPU: user + sys of the tool's whole process tree (GNU time); peak RSS: its maxRSS (where",
          '  /usr/bin/time is missing: polled from /proc every 50 ms, a lower bound). "hub/CDN req": the',
          '  median count of resolve/ and /blob requests per run (every download starts at resolve/).',
          '  "engine only" is the time inside fetchBlobs (case 5: inside the whole oci: pull), without',
          '  Node start-up and exit.',
          ...(hfRepos
            ? [
                `  Case 8: ${MANY_FILES_REPO} holds ${describe(hfRepos.many)}, ${ONE_FILE_REPO} ${describe(hfRepos.one)},`,
                '  cut from the blob; the fake Hub (revision, tree, resolve/ → 302 to its CDN) and the CDN capped',
                '  per connection; ours is the CLI (`pull hf:…`, whole pipeline), hf download a fresh cache; every',
                '  snapshot is hashed file by file afterwards. "+N API": revision and tree calls.',
              ]
            : []),
          '',
          targetTable(evaluate(results, size)),
          '',
        ]
      : []),
    ...(restored && entry ? [restoreReport(restored, entry), ''] : []),
    `bench took ${((performance.now() - began) / 1000).toFixed(0)} s`,
    '',
  ].join('\n'),
);
