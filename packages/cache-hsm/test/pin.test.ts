import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { isPsiError } from "@psi/core";
import { tempDir } from "@psi/testkit/tmp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveHsmPin } from "../src/index.js";

describe("resolveHsmPin (SPEC §8.2: credential → config → environment)", () => {
  let dir: { path: string; cleanup: () => Promise<void> };
  let credentials: string;

  beforeAll(async () => {
    dir = await tempDir("psi-hsm-pin-");
    credentials = join(dir.path, "creds");
    await mkdir(credentials);
    await writeFile(join(credentials, "hsm-pin"), "  from-credential\n", { mode: 0o600 });
  });
  afterAll(() => dir.cleanup());

  it("prefers $CREDENTIALS_DIRECTORY/hsm-pin, trimmed", async () => {
    const resolved = await resolveHsmPin({
      env: { CREDENTIALS_DIRECTORY: credentials, PSI_NITROKEYHSM_PIN: "from-env" },
      configPin: "from-config",
    });
    expect(resolved).toEqual({ pin: "from-credential", source: join(credentials, "hsm-pin") });
  });

  it("falls back to the config pin when the credential file is absent", async () => {
    const empty = join(dir.path, "no-creds");
    await mkdir(empty);
    const resolved = await resolveHsmPin({
      env: { CREDENTIALS_DIRECTORY: empty, PSI_NITROKEYHSM_PIN: "from-env" },
      configPin: "from-config",
    });
    expect(resolved).toEqual({ pin: "from-config", source: "providers.nitrokeyhsm.pin" });
  });

  it("counts an empty config pin as set (NSS softokn's PIN is empty)", async () => {
    const resolved = await resolveHsmPin({
      env: { PSI_NITROKEYHSM_PIN: "from-env" },
      configPin: "",
    });
    expect(resolved.pin).toBe("");
  });

  it("uses PSI_NITROKEYHSM_PIN last", async () => {
    const resolved = await resolveHsmPin({
      env: { PSI_NITROKEYHSM_PIN: "from-env" },
      configPin: null,
    });
    expect(resolved).toEqual({ pin: "from-env", source: "PSI_NITROKEYHSM_PIN" });
  });

  it("fails with the three ways to provide a PIN when none is set", async () => {
    const error = await resolveHsmPin({ env: {}, configPin: null }).catch((e: unknown) => e);
    expect(isPsiError(error, "hsm.pin_missing")).toBe(true);
    const hint = (error as { hint: string }).hint;
    expect(hint).toContain("hsm-pin");
    expect(hint).toContain("providers.nitrokeyhsm.pin");
    expect(hint).toContain("PSI_NITROKEYHSM_PIN");
  });

  it("reports an unreadable credential instead of silently falling back", async () => {
    const unreadable = join(dir.path, "dir-creds");
    await mkdir(join(unreadable, "hsm-pin"), { recursive: true });
    const error = await resolveHsmPin({
      env: { CREDENTIALS_DIRECTORY: unreadable },
      configPin: "x",
    }).catch((e: unknown) => e);
    expect(isPsiError(error, "hsm.pin_unreadable")).toBe(true);
  });
});
