import { psiProject } from "../../vitest.shared.ts";

export default psiProject("@psi/ops");
