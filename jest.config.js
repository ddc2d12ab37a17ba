/** Tests run the TypeScript sources through ts-jest, transpile-only (tsconfig's isolatedModules); `npm test` type-checks with tsc. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': 'ts-jest' },
  // Many tests start programs, etcd or systemd; on a loaded 2-core machine 5 s is too little for a
  // test that runs a handful of them one after the other.
  testTimeout: 30_000,
};
