import { Inputs, Outputs } from '../../src/constants.js';
import { sourceOptions } from '../../src/sources/descriptor.js';
import { DEFAULT_SOURCES } from '../../src/sources/index.js';
import {
  actionDefaults,
  actionMetadata,
  createRunner,
  parseFileCommands,
  stepEnvironment,
} from '../helpers/action.js';

/**
 * The runner emulation the other action tests stand on, and the names they use: action.yml,
 * src/constants.ts and interface.md must agree, or a test could pass an input the runner never
 * hands to the action.
 */

const INTERFACE_INPUTS = [
  'models',
  'ollama-models',
  'hf-cache',
  'files-dir',
  'hf-endpoint',
  'hf-token',
  'cache',
  'cache-key-prefix',
  'concurrency',
  'connections',
  'verify',
  'insecure',
  'ca-cert',
  'lockfile',
  'lock-mode',
  'save',
  'fail-on-cache-miss',
  'export-env',
  'hf-offline',
  'ollama-version',
  'ollama-serve',
];
const INTERFACE_OUTPUTS = [
  'cache-hit',
  'models',
  'paths',
  'ollama-models',
  'hf-cache',
  'downloaded-bytes',
  'cached-bytes',
  // Added to interface.md's list: which hosts served each line's bytes (mirrors, docs/scale-out.md).
  'downloaded-from',
  'ollama-version',
  'ollama-host',
];

describe('action.yml and the runner emulation', () => {
  test('action.yml declares every input and output of interface.md, and constants.ts mirrors it', () => {
    const meta = actionMetadata();
    expect([...meta.inputs.keys()]).toEqual(expect.arrayContaining(INTERFACE_INPUTS));
    // The shared inputs, plus those the sources declare for themselves.
    const sourceInputs = sourceOptions(DEFAULT_SOURCES).map((o) => o.name);
    expect([...meta.inputs.keys()].sort()).toEqual([...Object.values(Inputs), ...sourceInputs].sort());
    expect([...meta.outputs].sort()).toEqual(Object.values(Outputs).sort());
    expect([...meta.outputs].sort()).toEqual([...INTERFACE_OUTPUTS].sort());
  });

  test('input defaults are the ones interface.md gives', () => {
    expect(actionDefaults()).toMatchObject({
      cache: 'true',
      'cache-key-prefix': 'model-pull',
      concurrency: '4',
      connections: '16',
      verify: 'full',
      insecure: 'false',
      'export-env': 'true',
      'hf-offline': 'false',
      'ollama-serve': 'false',
    });
    // Inputs whose default depends on the environment have none in action.yml.
    for (const name of ['models', 'ollama-models', 'hf-cache', 'hf-token', 'hf-endpoint', 'lockfile'])
      expect(actionDefaults()).not.toHaveProperty(name);
  });

  test('file commands: heredoc values keep their lines, one-line values parse too', () => {
    const text = [
      'models<<ghadelimiter_1234',
      '[{"ref":"a"}]',
      'ghadelimiter_1234',
      'summary<<ghadelimiter_abcd',
      'line one',
      '',
      'line = three',
      'ghadelimiter_abcd',
      'OLD_STYLE=value=with=equals',
      '',
    ].join('\n');
    expect(parseFileCommands(text)).toEqual({
      models: '[{"ref":"a"}]',
      summary: 'line one\n\nline = three',
      OLD_STYLE: 'value=with=equals',
    });
    expect(() => parseFileCommands('x<<END\nvalue\n')).toThrow('unterminated value for x');
  });

  test('a step sees only the runner variables and its inputs; nothing of the parent leaks', () => {
    const leaks = {
      INPUT_MODELS: 'ollama:leaked',
      GITHUB_TOKEN: 'ghs_leaked',
      ACTIONS_RUNTIME_TOKEN: 'leaked',
      HTTPS_PROXY: 'http://proxy.invalid:3128',
      HF_TOKEN: 'hf_leaked',
    };
    const saved = Object.fromEntries(Object.keys(leaks).map((k) => [k, process.env[k]]));
    Object.assign(process.env, leaks);
    try {
      const f = { output: '/o', env: '/e', state: '/s', summary: '/m', path: '/p' };
      const folders = { home: '/h', workspace: '/w', temp: '/t', toolCache: '/c' };
      const env = stepEnvironment(
        folders,
        f,
        { 'ollama-models': '/store', models: 'ollama:x' },
        { EXTRA: '1' },
      );
      expect(env).toEqual({
        PATH: process.env.PATH,
        CI: 'true',
        GITHUB_ACTIONS: 'true',
        RUNNER_OS: 'Linux',
        RUNNER_ARCH: 'X64',
        HOME: '/h',
        RUNNER_TEMP: '/t',
        RUNNER_TOOL_CACHE: '/c',
        GITHUB_WORKSPACE: '/w',
        GITHUB_OUTPUT: '/o',
        GITHUB_ENV: '/e',
        GITHUB_STATE: '/s',
        GITHUB_STEP_SUMMARY: '/m',
        GITHUB_PATH: '/p',
        NO_PROXY: '127.0.0.1,localhost',
        EXTRA: '1',
        'INPUT_OLLAMA-MODELS': '/store',
        INPUT_MODELS: 'ollama:x',
      });
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  test('the built action fails a bad line with an error annotation and writes no output, env or state', async () => {
    const runner = await createRunner();
    try {
      const run = await runner.run({ models: 'nonsense:line' });
      expect(run.code).toBe(1);
      expect(run.errors()).toEqual([
        'invalid model line "nonsense:line": expected ollama:NAME, hf:OWNER/REPO, oci:[HOST/]REPO[:TAG] or an https:// URL with sha256=',
      ]);
      expect(run.outputs).toEqual({});
      expect(run.exported).toEqual({});
      expect(run.state).toEqual({});
    } finally {
      await runner.dispose();
    }
  });
});
