import { defineConfig } from 'vitest/config';

// Tests resolve workspace packages to their TypeScript sources through the `@kiln/source`
// export condition, so `npm test` needs no build step.
export default defineConfig({
  resolve: { conditions: ['@kiln/source'] },
  ssr: { resolve: { conditions: ['@kiln/source'] } },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'examples/*/test/**/*.test.ts'],
    testTimeout: 60_000,
    pool: 'forks',
  },
});
