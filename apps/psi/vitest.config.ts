import { psiProject } from "../../vitest.shared.ts";

export default psiProject("@psi/cli", { testTimeout: 60_000 });
