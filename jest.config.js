/** Tests run the TypeScript sources through ts-jest, transpile-only (tsconfig's isolatedModules); `npm test` type-checks with tsc. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': 'ts-jest' },
};
