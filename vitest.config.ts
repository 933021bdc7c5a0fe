import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // forks, not vm pools: an addon's errors must be of this realm (TOOLCHAIN.md).
    pool: "forks",
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
