import { serverEnvironment } from '../../src/action/run.js';

it('gives the detached ollama server none of the step secrets', () => {
  const env = serverEnvironment({
    PATH: '/usr/bin',
    HOME: '/home/runner',
    'INPUT_HF-TOKEN': 'hf_secret',
    'INPUT_REGISTRY-PASSWORD': 'pw',
    ACTIONS_RUNTIME_TOKEN: 'runtime',
    ACTIONS_RESULTS_URL: 'https://results',
    HF_TOKEN: 'hf_env',
    HUGGING_FACE_HUB_TOKEN: 'hf_old',
    GITHUB_TOKEN: 'ghs_x',
    OLLAMA_KEEP_ALIVE: '5m',
  });
  expect(env).toEqual({ PATH: '/usr/bin', HOME: '/home/runner', OLLAMA_KEEP_ALIVE: '5m' });
});
