import { spawnSync } from "node:child_process";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  assertSecretId,
  defaultPaths,
  durationSeconds,
  errorMessage,
  formatAge,
  infisicalMappingBytes,
  isDuration,
  isPsiError,
  isReservedStateFile,
  PsiError,
  parseMapping,
  scopeForUid,
  secretIdProblem,
} from "../src/index.js";

function thrown(fn: () => unknown): PsiError {
  try {
    fn();
  } catch (error) {
    if (error instanceof PsiError) return error;
    throw error;
  }
  throw new Error("did not throw");
}

describe("secret IDs", () => {
  it("accepts Podman's hex IDs and other plain names", () => {
    expect(assertSecretId("3f5a0c9e2b1d4e6f8a7b9c0d1")).toBe("3f5a0c9e2b1d4e6f8a7b9c0d1");
    expect(secretIdProblem("myapp--DB_HOST")).toBeUndefined();
    expect(secretIdProblem("...")).toBeUndefined();
    expect(secretIdProblem(".hidden")).toBeUndefined();
  });

  it.each([
    ["", "it is empty"],
    [".", '"." is not a file name'],
    ["..", '".." is not a file name'],
    ["../etc/passwd", "it contains '/', '\\' or a NUL byte"],
    ["a/b", "it contains '/', '\\' or a NUL byte"],
    ["..\\windows", "it contains '/', '\\' or a NUL byte"],
    ["abc\0def", "it contains '/', '\\' or a NUL byte"],
    ["\0", "it contains '/', '\\' or a NUL byte"],
  ])("rejects %j: %s", (id, problem) => {
    expect(secretIdProblem(id)).toBe(problem);
    const error = thrown(() => assertSecretId(id));
    expect(error.code).toBe("secret_id.invalid");
    expect(error.message).toBe(`invalid secret ID: ${problem}`);
    expect(error.hint).toContain("1-255 bytes");
  });

  it("counts the length in UTF-8 bytes: 255 is fine, 256 is not", () => {
    expect(secretIdProblem("a".repeat(255))).toBeUndefined();
    expect(secretIdProblem("a".repeat(256))).toBe("it is longer than 255 bytes");
    // "é" is 2 bytes: 127 of them plus one ASCII byte is 255 bytes in 128 characters.
    expect(secretIdProblem(`${"é".repeat(127)}a`)).toBeUndefined();
    expect(secretIdProblem("é".repeat(128))).toBe("it is longer than 255 bytes");
    // "😀" is 4 bytes (2 UTF-16 units): 63 of them + 3 bytes = 255; 64 = 256.
    expect(secretIdProblem(`${"😀".repeat(63)}abc`)).toBeUndefined();
    expect(secretIdProblem("😀".repeat(64))).toBe("it is longer than 255 bytes");
    expect("😀".repeat(64).length).toBe(128);
  });
});

describe("state_dir reserved files", () => {
  it.each([
    ".token.0123456789ab.json",
    ".psi-0011.tmp",
    "cache.enc",
    "nitrokeyhsm-pubkey.der",
    "cache.key",
    "cache.keyfile",
    "hsm.pin",
    ".pin",
  ])("%s is PSI's own", (name) => {
    expect(isReservedStateFile(name)).toBe(true);
  });

  it.each(["3f5a0c9e2b1d4e6f8a7b9c0d1", "cache.enc.bak", "pin", "cache", "nitrokeyhsm-pubkey.pem"])(
    "%s is a secret",
    (name) => {
      expect(isReservedStateFile(name)).toBe(false);
    },
  );
});

describe("default paths", () => {
  it("uid 0 is the system scope, anything else the user scope", () => {
    expect(scopeForUid(0)).toBe("system");
    expect(scopeForUid(1000)).toBe("user");
  });

  it("system scope paths (SPEC §2)", () => {
    expect(defaultPaths("system", { HOME: "/root", XDG_RUNTIME_DIR: "/run/user/0" }, 0)).toEqual({
      config: "/etc/psi/config.yaml",
      configDir: "/etc/psi",
      stateDir: "/var/lib/psi",
      systemdDir: "/etc/containers/systemd",
      socket: "/run/psi/psi.sock",
      podmanSocket: "/run/podman/podman.sock",
      unitDir: "/etc/systemd/system",
      containersConfDir: "/etc/containers/containers.conf.d",
    });
  });

  it("user scope paths follow HOME and XDG_RUNTIME_DIR", () => {
    expect(
      defaultPaths("user", { HOME: "/home/alice", XDG_RUNTIME_DIR: "/run/user/1000" }, 1000),
    ).toEqual({
      config: "/home/alice/.config/psi/config.yaml",
      configDir: "/home/alice/.config/psi",
      stateDir: "/home/alice/.local/share/psi",
      systemdDir: "/home/alice/.config/containers/systemd",
      socket: "/run/user/1000/psi/psi.sock",
      podmanSocket: "/run/user/1000/podman/podman.sock",
      unitDir: "/home/alice/.config/systemd/user",
      containersConfDir: "/home/alice/.config/containers/containers.conf.d",
    });
  });

  it("without XDG_RUNTIME_DIR (or with an empty one) the runtime dir is /run/user/<uid>", () => {
    for (const env of [{ HOME: "/home/bob" }, { HOME: "/home/bob", XDG_RUNTIME_DIR: "" }]) {
      const paths = defaultPaths("user", env, 1001);
      expect(paths.socket).toBe("/run/user/1001/psi/psi.sock");
      expect(paths.podmanSocket).toBe("/run/user/1001/podman/podman.sock");
    }
  });

  it("an explicit home wins over HOME", () => {
    expect(defaultPaths("user", { HOME: "/home/x" }, 5, "/srv/h").stateDir).toBe(
      "/srv/h/.local/share/psi",
    );
  });
});

describe("parseMapping", () => {
  it("accepts any JSON object with a string provider, from bytes or text", () => {
    const infisical = { provider: "infisical", project: "p", path: "/a", key: "K" };
    expect(parseMapping(Buffer.from(JSON.stringify(infisical)))).toEqual(infisical);
    expect(parseMapping('{"provider":"local","blob":"AAAA","extra":[1,{"x":null}]}')).toEqual({
      provider: "local",
      blob: "AAAA",
      extra: [1, { x: null }],
    });
  });

  it.each([
    ["{", "state_dir/abc is not valid JSON"],
    ["", "state_dir/abc is not valid JSON"],
    ["[]", "state_dir/abc is not a JSON object"],
    ["null", "state_dir/abc is not a JSON object"],
    ['"infisical"', "state_dir/abc is not a JSON object"],
    ["{}", 'state_dir/abc has no string "provider" field'],
    ['{"provider": 1}', 'state_dir/abc has no string "provider" field'],
    ['{"provider": ""}', 'state_dir/abc has no string "provider" field'],
    ['{"provider": null}', 'state_dir/abc has no string "provider" field'],
  ])("%j → %s", (text, message) => {
    const error = thrown(() => parseMapping(text, "state_dir/abc"));
    expect(error.code).toBe("mapping.corrupt");
    expect(error.message).toBe(message);
    expect(error.hint).toBeTruthy();
  });

  it("names the default location when none is given, and never echoes the content", () => {
    const error = thrown(() => parseMapping('{"provider": 1, "value": "hunter2"}'));
    expect(error.message).toBe('mapping has no string "provider" field');
    expect(`${error.message} ${error.hint}`).not.toContain("hunter2");
  });

  it("survives very deep nesting", () => {
    const deep = "[".repeat(200_000);
    expect(thrown(() => parseMapping(deep)).code).toBe("mapping.corrupt");
  });
});

describe("infisicalMappingBytes", () => {
  it("writes the reference's form for a plain mapping", () => {
    expect(
      Buffer.from(
        infisicalMappingBytes({ project: "myproject", path: "/myapp", key: "DB_HOST" }),
      ).toString(),
    ).toBe('{"provider": "infisical", "project": "myproject", "path": "/myapp", "key": "DB_HOST"}');
  });

  it("equals python3's json.dumps bytes for generated values, including non-ASCII", () => {
    const text = fc.oneof(
      fc.string(),
      fc.string({ unit: "binary" }),
      fc.string({ unit: "grapheme" }),
      fc.constantFrom(
        "é",
        "😀",
        "/a/b",
        'q"uote',
        "back\\slash",
        "tab\tnew\nline",
        "\u2028\u2029",
        "\x7f",
        "\ud800x",
        "\udc00",
      ),
    );
    const samples = fc.sample(fc.record({ project: text, path: text, key: text }), {
      numRuns: 300,
      seed: 20260408,
    });
    const script = [
      "import json, sys",
      "rows = json.load(sys.stdin)",
      'out = [json.dumps({"provider": "infisical", "project": r[0], "path": r[1], "key": r[2]}) for r in rows]',
      'sys.stdout.write("\\n".join(out))',
    ].join("\n");
    const result = spawnSync("python3", ["-c", script], {
      input: JSON.stringify(samples.map((s) => [s.project, s.path, s.key])),
      encoding: "utf8",
    });
    expect(result.stderr).toBe("");
    const expected = result.stdout.split("\n");
    expect(expected).toHaveLength(samples.length);
    samples.forEach((sample, i) => {
      expect(Buffer.from(infisicalMappingBytes(sample)).toString("latin1")).toBe(expected[i]);
    });
    // Python's default ensure_ascii keeps every byte ASCII.
    expect(samples.some((s) => /[^\x00-\x7f]/.test(s.project + s.path + s.key))).toBe(true);
  });
});

describe("durations", () => {
  it.each([
    ["1h", 3600],
    ["30min", 1800],
    ["5m", 300],
    ["90d", 7_776_000],
    ["1h 30min", 5400],
    ["1h30m", 5400],
    ["300", 300],
    ["1.5s", 1.5],
    ["2 weeks", 1_209_600],
    ["1M", 2_629_800],
  ])("%s is %d seconds", (text, seconds) => {
    expect(durationSeconds(text)).toBe(seconds);
    expect(isDuration(text)).toBe(true);
  });

  it.each(["", " ", "h", "1 fortnight", "-5", "1h -", "1constructor", "1toString", "5 m x"])(
    "%j is not a duration",
    (text) => {
      expect(durationSeconds(text)).toBeUndefined();
    },
  );

  it("takes numbers as seconds", () => {
    expect(durationSeconds(60)).toBe(60);
    expect(durationSeconds(-1)).toBeUndefined();
    expect(durationSeconds(Number.NaN)).toBeUndefined();
  });

  it.each([
    [0, "0s"],
    [89, "89s"],
    [90, "2min"],
    [5_339, "89min"],
    [5_400, "2h"],
    [169_000, "47h"],
    [172_800, "2d"],
  ])("formatAge(%d) is %s", (seconds, text) => {
    expect(formatAge(seconds)).toBe(text);
  });
});

describe("errors", () => {
  it("PsiError carries code, message, hint and cause", () => {
    const cause = new Error("low level");
    const error = new PsiError("cache.bad_magic", "not a PSI cache file: /x", {
      hint: "re-run setup",
      cause,
    });
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe("PsiError");
    expect([error.code, error.message, error.hint, error.cause]).toEqual([
      "cache.bad_magic",
      "not a PSI cache file: /x",
      "re-run setup",
      cause,
    ]);
    expect(isPsiError(error)).toBe(true);
    expect(isPsiError(error, "cache.bad_magic")).toBe(true);
    expect(isPsiError(error, "config.invalid")).toBe(false);
    expect(isPsiError(cause)).toBe(false);
    expect(errorMessage(error)).toBe("not a PSI cache file: /x");
    expect(errorMessage("plain")).toBe("plain");
  });
});
