import { execFileSync } from "node:child_process";
import { mkdir, symlink, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  MAX_MAPPING_BYTES,
  readMappingFile,
  readMappingFileSync,
  readRegularFile,
  readRegularFileSync,
} from "../src/index.js";
import { tempDir } from "./helpers/tmp.js";

// Real FIFOs, devices, sparse files and /proc files that lie about their size.

let dir: { path: string; cleanup: () => Promise<void> };
beforeEach(async () => {
  dir = await tempDir("psi-read-regular-");
});
afterEach(() => dir.cleanup());

const readers = {
  async: (path: string, maxBytes: number) => readRegularFile(path, { maxBytes, what: "the file" }),
  sync: async (path: string, maxBytes: number) =>
    readRegularFileSync(path, { maxBytes, what: "the file" }),
};

for (const [name, read] of Object.entries(readers)) {
  describe(`readRegularFile (${name})`, () => {
    it("reads a regular file up to exactly the cap", async () => {
      const path = join(dir.path, "ok");
      await writeFile(path, "x".repeat(1000));
      expect((await read(path, 1000)).toString()).toBe("x".repeat(1000));
      expect((await read(path, 5000)).length).toBe(1000);
      await writeFile(path, "");
      expect((await read(path, 10)).length).toBe(0);
    });

    it("refuses a FIFO at once, without waiting for a writer", async () => {
      const path = join(dir.path, "fifo");
      execFileSync("mkfifo", [path]);
      await expect(read(path, 1024)).rejects.toMatchObject({
        code: "fs.not_regular",
        message: `the file (${path}) is a FIFO`,
        hint: expect.stringContaining("regular file"),
      });
    });

    it("never follows a symlink, not even to /dev/zero", async () => {
      const path = join(dir.path, "zero");
      await symlink("/dev/zero", path);
      await expect(read(path, 1024)).rejects.toMatchObject({ code: "fs.symlink" });
      await expect(read("/dev/zero", 1024)).rejects.toMatchObject({
        code: "fs.not_regular",
        message: expect.stringContaining("character device"),
      });
    });

    it("refuses a sparse 2 GB file from its size, without reading it", async () => {
      const path = join(dir.path, "sparse");
      await writeFile(path, "");
      await truncate(path, 2 * 1024 ** 3);
      await expect(read(path, 1024 * 1024)).rejects.toMatchObject({
        code: "fs.too_large",
        message: expect.stringContaining("larger than 1048576 bytes"),
      });
    });

    it("caps a file whose size lies (a /proc file reports 0 bytes)", async () => {
      const status = await read("/proc/self/status", 1 << 20);
      expect(status.length).toBeGreaterThan(64);
      await expect(read("/proc/self/status", 64)).rejects.toMatchObject({
        code: "fs.too_large",
      });
    });

    it("refuses a directory; a missing file is fs.not_found", async () => {
      const path = join(dir.path, "sub");
      await mkdir(path);
      await expect(read(path, 1024)).rejects.toMatchObject({
        code: "fs.not_regular",
        message: expect.stringContaining("is a directory"),
      });
      await expect(read(join(dir.path, "absent"), 1024)).rejects.toMatchObject({
        code: "fs.not_found",
      });
    });
  });
}

// The async reader (setup, cache invalidate, HSM status) and the sync one (the lookup hot
// path) read mapping files alike.
const mappingReaders = {
  readMappingFile,
  readMappingFileSync: async (stateDir: string, id: string) => readMappingFileSync(stateDir, id),
};
for (const [name, read] of Object.entries(mappingReaders)) {
  describe(name, () => {
    it("reads state_dir/<id>, and says undefined when there is none", async () => {
      await writeFile(join(dir.path, "abc"), '{"provider":"local"}');
      expect((await read(dir.path, "abc"))?.toString()).toBe('{"provider":"local"}');
      expect(await read(dir.path, "missing")).toBeUndefined();
    });

    it("refuses what no mapping file is (a symlink, more than the cap), saying how to fix it", async () => {
      await writeFile(join(dir.path, "target"), "{}");
      await symlink(join(dir.path, "target"), join(dir.path, "link"));
      await expect(read(dir.path, "link")).rejects.toMatchObject({
        code: "fs.symlink",
        hint: "remove it (psi secret delete, or podman secret rm link) and store it again",
      });
      await writeFile(join(dir.path, "big"), "");
      await truncate(join(dir.path, "big"), MAX_MAPPING_BYTES + 1);
      await expect(read(dir.path, "big")).rejects.toMatchObject({ code: "fs.too_large" });
    });
  });
}
