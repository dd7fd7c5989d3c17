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
};
