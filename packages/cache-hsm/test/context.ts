import type { NitrokeyHsmConfig, PsiConfig, PsiContext } from "@psi/core";
import { defaultPaths, type Env } from "@psi/core";
import { recordingLogger } from "@psi/testkit/logger";

export { type LogLine, recordingLogger } from "@psi/testkit/logger";

/** A PsiContext whose state_dir is `stateDir` and whose nitrokeyhsm block is `hsm`. */
export function hsmContext(
  hsm: NitrokeyHsmConfig,
  stateDir: string,
  env: Env = {},
): PsiContext & { logger: ReturnType<typeof recordingLogger> } {
  const config = { providers: { nitrokeyhsm: hsm }, workloads: {} } as unknown as PsiConfig;
  return {
    config,
    scope: "user",
    paths: { ...defaultPaths("user", env, 1000, stateDir), stateDir },
    logger: recordingLogger(),
    env,
  };
}
