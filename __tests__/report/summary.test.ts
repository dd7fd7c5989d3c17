import { ModelPullError } from '../../src/errors.js';
import {
  downloadedFromJson,
  modelsJson,
  pathsJson,
  stoppedMarkdown,
  summaryMarkdown,
} from '../../src/report/summary.js';
import type { PullReport } from '../../src/report/types.js';

const MiB = 1024 * 1024;
const key = `model-pull-v1-hf-${'a'.repeat(64)}`;
const refused = new ModelPullError(
  'ERR_LOCKFILE',
  'lock file m.lock: the recorded identity of "hf:o/b" is invalid',
  {
    fix: 'look the line up again with `model-pull lock --lockfile m.lock hf:o/b`',
  },
);
const report: PullReport = {
  models: [
    {
      line: 'hf:o/a',
      source: 'hf',
      key,
      output: {
        ref: 'hf:o/a',
        source: 'hf',
        name: 'o/a',
        digest: 'c'.repeat(40),
        path: '/cache/models--o--a/snapshots/cc',
        size: 4 * MiB,
        cache: 'miss',
        files: [],
      },
      downloadedBytes: 4 * MiB,
      cachedBytes: 0,
      durationMs: 2000,
    },
    { line: 'hf:o/b', source: 'hf', error: refused, downloadedBytes: 0, cachedBytes: 0, durationMs: 0 },
    {
      line: 'hf:o/c',
      source: 'hf',
      error: new Error('boom | pipe'),
      downloadedBytes: 0,
      cachedBytes: 0,
      durationMs: 0,
    },
  ],
  downloadedBytes: 4 * MiB,
  cachedBytes: 0,
  cacheHit: false,
  ok: false,
};

describe('the job summary', () => {
  test('a row per model with its cache key, then each failure with the fix it suggests', () => {
    expect(summaryMarkdown(report).split('\n')).toEqual([
      '### model-pull',
      '',
      '| model | source | size | cache | downloaded | time | throughput | cache key |',
      '| --- | --- | --- | --- | --- | --- | --- | --- |',
      `| \`hf:o/a\` | hf | 4.0 MiB | miss | 4.0 MiB | 2.0 s | 2.0 MiB/s | \`${key}\` |`,
      '| `hf:o/b` | – | – | failed | 0 B | – | – | – |',
      '| `hf:o/c` | – | – | failed | 0 B | – | – | – |',
      '',
      'Downloaded 4.0 MiB, restored 0 B from the Actions cache.',
      '',
      '**Failed**',
      '',
      // Reasons and fixes are code spans: server text never renders as Markdown or HTML.
      '- `hf:o/b`: `lock file m.lock: the recorded identity of "hf:o/b" is invalid`',
      "  - **Fix:** `look the line up again with 'model-pull lock --lockfile m.lock hf:o/b'`",
      // Outside a table a `|` is plain text: escaped, it would show as `\|`.
      '- `hf:o/c`: `boom | pipe`',
      '',
    ]);
  });

  test('a | is escaped in table cells only, where it would end the cell', () => {
    const line = `https://h/a|b.gguf sha256=${'d'.repeat(64)}`;
    const piped: PullReport = {
      ...report,
      models: [
        {
          line,
          source: 'url',
          key: 'k|1',
          error: new Error('x | y'),
          downloadedBytes: 0,
          cachedBytes: 0,
          durationMs: 0,
        },
      ],
    };
    expect(summaryMarkdown(piped)).toBe(
      [
        '### model-pull',
        '',
        '| model | source | size | cache | downloaded | time | throughput | cache key |',
        '| --- | --- | --- | --- | --- | --- | --- | --- |',
        `| \`https://h/a\\|b.gguf sha256=${'d'.repeat(64)}\` | – | – | failed | 0 B | – | – | \`k\\|1\` |`,
        '',
        'Downloaded 4.0 MiB, restored 0 B from the Actions cache.',
        '',
        '**Failed**',
        '',
        `- \`https://h/a|b.gguf sha256=${'d'.repeat(64)}\`: \`x | y\``,
        '',
      ].join('\n'),
    );
  });

  test('a run stopped before any pull says why and what to do', () => {
    const stopped = new ModelPullError('ERR_LOCKFILE', 'lock file m.lock does not exist', {
      fix: 'create it with `model-pull lock --lockfile m.lock hf:o/a`',
    });
    expect(stoppedMarkdown(stopped)).toBe(
      '### model-pull\n\n**Failed before any download**\n\n- `lock file m.lock does not exist`\n' +
        "  - **Fix:** `create it with 'model-pull lock --lockfile m.lock hf:o/a'`\n",
    );
    expect(stopped.message).toBe(
      'lock file m.lock does not exist; create it with `model-pull lock --lockfile m.lock hf:o/a`',
    );
  });
});

describe('the outputs by line', () => {
  test('paths has each pulled line; models keeps every line in order, failures with their error', () => {
    expect(pathsJson(report)).toEqual({ 'hf:o/a': '/cache/models--o--a/snapshots/cc' });
    expect(modelsJson(report).map((m) => [m.ref, 'error' in m ? m.error : 'ok'])).toEqual([
      ['hf:o/a', 'ok'],
      ['hf:o/b', refused.message],
      ['hf:o/c', 'boom | pipe'],
    ]);
  });
});

describe('where the bytes came from, and what mirror-to pushed', () => {
  const fromMirror: PullReport = {
    ...report,
    models: [
      { ...report.models[0]!, from: { 'registry.corp': 3 * MiB, 'cdn.example': MiB } },
      { ...report.models[1]!, from: { 'registry.corp': 1024 } },
      report.models[2]!,
    ],
  };

  test('downloaded-from has each line that downloaded, by host', () => {
    expect(downloadedFromJson(fromMirror)).toEqual({
      'hf:o/a': { 'registry.corp': 3 * MiB, 'cdn.example': MiB },
      'hf:o/b': { 'registry.corp': 1024 },
    });
    expect(downloadedFromJson(report)).toEqual({});
  });

  test('the summary lists each host with its bytes and lines, then each push', () => {
    const text = summaryMarkdown(fromMirror, [
      {
        line: 'hf:o/a',
        names: ['registry.corp/o/a:cc', 'registry.corp/o/a:main'],
        digest: 'sha256:aa',
        blobs: [
          { outcome: 'uploaded', sentBytes: 2 * MiB },
          { outcome: 'present', sentBytes: 0 },
        ],
      },
      { line: 'hf:o/b', names: [], error: new Error('the pull failed') },
    ]);
    expect(text).toContain(
      [
        '**Downloaded from**',
        '',
        '- `registry.corp`: 3.0 MiB (`hf:o/a`, `hf:o/b`)',
        '- `cdn.example`: 1.0 MiB (`hf:o/a`)',
        '',
        '**Pushed (mirror-to)**',
        '',
        '- `hf:o/a` → `registry.corp/o/a:cc`, `registry.corp/o/a:main`: 1 of 2 blobs uploaded (2.0 MiB)',
        '- `hf:o/b`: not pushed: `the pull failed`',
      ].join('\n'),
    );
  });
});
