import { defineConfig } from 'vitest/config';

// node-datachannel has crashed inside worker_threads (node-datachannel#129), and node-pty
// wants a real process: every test file runs in its own forked child.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    teardownTimeout: 20_000,
  },
});
