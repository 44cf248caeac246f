// Cache save and load with the keyfile backend (SPEC §13: each under 50 ms at 10,000
// entries, cost linear in entries), at 1,000, 10,000 and 20,000 entries.
//   save  = what setup does after fetching: encrypt the whole payload and replace cache.enc
//           atomically (temp file, fsync, rename, fsync dir) — saveCache with the previous
//           contents already in hand;
//   load  = what serve does at start and on every reload: read + decrypt + build the map
//           (createCacheStore().load());
//   refresh = saveCache reading the previous file first (load + save in one call).
// A bare encrypt+write of the same bytes without fsync is measured in the same run for scale.
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { median } from "./psi-fixture.mjs";

const SIZES = [1_000, 10_000, 20_000];
const RUNS = 9;
const GOAL_MS = 50;

function fetchedSet(entries) {
  const fetched = [];
  for (let i = 0; i < entries; i++) {
    fetched.push({
      mapping: { provider: "infisical", project: "bench", path: "/app", key: `KEY_${i}` },
      value: randomBytes(32),
    });
  }
  return fetched;
}

async function time(fn) {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

export default async function cacheBench({ root, log }) {
  const { saveCache, readCacheFile, createCacheStore, prepareCacheSave } = await import(
    join(root, "packages/cache/dist/index.js")
  );
  const { initKeyfile, keyfileCacheBackendFromKey } = await import(
    join(root, "packages/cache-keyfile/dist/index.js")
  );
  const dir = await mkdtemp(join(tmpdir(), "psi-bench-cache-"));
  const silent = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };
  try {
    const key = await initKeyfile({ path: join(dir, "cache.keyfile") });
    const backend = keyfileCacheBackendFromKey(key);
    await backend.open();
    const results = {};
    for (const entries of SIZES) {
      const path = join(dir, `cache-${entries}.enc`);
      const fetched = fetchedSet(entries);
      await saveCache({ path, backend, prune: true, fetched, previous: null });
      const previous = await readCacheFile({ path, backend });
      // What setup does: the previous file is read and every mapping keyed while the
      // providers are still fetching; after the last fetch only the save itself remains.
      const prepared = await prepareCacheSave({ path, backend, previous });
      for (const { mapping } of fetched) prepared.keyOf(mapping);
      const setupSave = [];
      const save = [];
      const load = [];
      const refresh = [];
      const bare = [];
      for (let run = 0; run <= RUNS; run++) {
        // run 0 warms up (JIT, page cache) and is not counted
        const s = await time(() => saveCache({ path, backend, prune: true, fetched, previous }));
        const ss = await time(() => saveCache({ path, backend, prune: true, fetched, prepared }));
        const store = createCacheStore({ path, backend, logger: silent });
        const l = await time(() => store.load());
        const r = await time(() => saveCache({ path, backend, prune: true, fetched }));
        const bytes = await readFile(path);
        const b = await time(() => writeFile(join(dir, "bare.bin"), bytes));
        if (store.stats().fileEntries !== entries) {
          throw new Error(`loaded ${store.stats().fileEntries} entries, expected ${entries}`);
        }
        if (run === 0) continue;
        save.push(s);
        setupSave.push(ss);
        load.push(l);
        refresh.push(r);
        bare.push(b);
      }
      const size = (await readFile(path)).length;
      results[entries] = {
        file_bytes: size,
        save_ms: Number(median(save).toFixed(1)),
        setup_save_ms: Number(median(setupSave).toFixed(1)),
        load_ms: Number(median(load).toFixed(1)),
        refresh_ms: Number(median(refresh).toFixed(1)),
        bare_write_ms: Number(median(bare).toFixed(2)),
      };
      const r = results[entries];
      log(
        `${String(entries).padStart(6)} entries (${(size / 1024).toFixed(0)} KiB): ` +
          `save ${r.save_ms} ms (keys computed during setup's fetches: ${r.setup_save_ms} ms), ` +
          `load ${r.load_ms} ms, refresh (load+save) ${r.refresh_ms} ms; ` +
          `bare write without fsync ${r.bare_write_ms} ms`,
      );
    }
    // Where a 10,000-entry save goes: HMAC keys of the mappings, payload encoding and
    // encryption, the atomic write (fsync included).
    const { cacheKeyer, encodeCacheFile } = await import(
      join(root, "packages/envelope/dist/index.js")
    );
    const { writeFileAtomic } = await import(join(root, "packages/core/dist/index.js"));
    const fetched = fetchedSet(10_000);
    const hmacKey = randomBytes(32);
    const keysMs = [];
    const encodeMs = [];
    const writeMs = [];
    for (let run = 0; run <= RUNS; run++) {
      let entries;
      const k = await time(() => {
        const keyOf = cacheKeyer(hmacKey);
        entries = new Map(fetched.map(({ mapping, value }) => [keyOf(mapping), value]));
      });
      let bytes;
      const e = await time(async () => {
        bytes = await encodeCacheFile({ hmacKey, entries }, backend);
      });
      const w = await time(() => writeFileAtomic(join(dir, "breakdown.enc"), bytes));
      if (run === 0) continue;
      keysMs.push(k);
      encodeMs.push(e);
      writeMs.push(w);
    }
    const breakdown = {
      keys_ms: Number(median(keysMs).toFixed(1)),
      encode_encrypt_ms: Number(median(encodeMs).toFixed(1)),
      atomic_write_ms: Number(median(writeMs).toFixed(1)),
    };
    log(
      `10,000-entry save, by step: HMAC keys ${breakdown.keys_ms} ms, payload JSON + AES-GCM ` +
        `${breakdown.encode_encrypt_ms} ms, atomic write with fsync ${breakdown.atomic_write_ms} ms`,
    );
    await backend.close();
    const at10k = results[10_000];
    const per1k = (entries, field) => results[entries][field] / (entries / 1000);
    const linear = {
      save_ms_per_1k: SIZES.map((n) => Number(per1k(n, "save_ms").toFixed(2))),
      load_ms_per_1k: SIZES.map((n) => Number(per1k(n, "load_ms").toFixed(2))),
      save_ratio_20k_to_10k: Number((results[20_000].save_ms / at10k.save_ms).toFixed(2)),
      load_ratio_20k_to_10k: Number((results[20_000].load_ms / at10k.load_ms).toFixed(2)),
    };
    const verdict = (ms) => (ms < GOAL_MS ? "meets" : "MISSES");
    log(
      `10,000 entries: save after setup's last fetch ${at10k.setup_save_ms} ms (${verdict(at10k.setup_save_ms)} goal < ${GOAL_MS} ms); ` +
        `save including keying all 10,000 mappings ${at10k.save_ms} ms (${verdict(at10k.save_ms)}), ` +
        `load ${at10k.load_ms} ms (${verdict(at10k.load_ms)} goal < ${GOAL_MS} ms)`,
    );
    log(
      `linearity: ms per 1,000 entries at ${SIZES.join(" / ")}: save ${linear.save_ms_per_1k.join(" / ")}, ` +
        `load ${linear.load_ms_per_1k.join(" / ")}; 20k/10k ratio save ${linear.save_ratio_20k_to_10k}, ` +
        `load ${linear.load_ratio_20k_to_10k} (linear ≈ 2)`,
    );
    return { runs: RUNS, goal_ms: GOAL_MS, sizes: results, linear, breakdown_10k: breakdown };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const { dirname } = await import("node:path");
  const { fileURLToPath } = await import("node:url");
  await cacheBench({ root: dirname(dirname(fileURLToPath(import.meta.url))), log: console.log });
}
