import { defineProject } from "vitest/config";

// Tests import sibling packages from source (the "@psi/source" export condition), so a
// package's tests never wait for, or run against a stale, build of its dependencies.
export function psiProject(name: string, extra: { testTimeout?: number } = {}) {
  return defineProject({
    resolve: { conditions: ["@psi/source", "node", "import", "default"] },
    ssr: { resolve: { conditions: ["@psi/source", "node", "import", "default"] } },
    test: {
      name,
      environment: "node",
      include: ["src/**/*.test.ts", "test/**/*.test.ts"],
      testTimeout: extra.testTimeout ?? 30_000,
      hookTimeout: 60_000,
    },
  });
}
