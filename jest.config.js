// ts-jest in ESM mode: tests import sources with the `.js` suffix NodeNext wants, the mapper
// strips it so ts-jest finds the `.ts` file.
export default {
  preset: 'ts-jest/presets/default-esm',
  testEnvironment: 'node',
  roots: ['<rootDir>/__tests__'],
  testMatch: ['**/*.test.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.test.json', diagnostics: false }],
  },
  testTimeout: 60000,
  maxWorkers: 2,
  // A worker leaves once its event loop is empty; on this loaded 2-core machine that took 410-490 ms
  // for a worker that ran one empty test and 650-750 ms after the registry tests, with nothing left
  // open (measured with a 5 s grace: every worker left by itself). Jest's 500 ms default then killed
  // them and printed "A worker process has failed to exit gracefully". 5 s still reports a real leak.
  workerGracefulExitTimeout: 5000,
};
