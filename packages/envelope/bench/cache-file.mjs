// Cache save/load of 10,000 entries (SPEC §13: each under 50 ms, linear in entries).
// Run after `pnpm exec turbo run build --filter=@psi/envelope`: node bench/cache-file.mjs
import { randomBytes } from "node:crypto";
import {
  aesGcmBackend,
  cacheKeyer,
  decodeCacheFile,
  encodeCacheFile,
  TAG_KEYFILE,
} from "../dist/index.js";

const cipher = aesGcmBackend(randomBytes(32), TAG_KEYFILE);
const hmacKey = randomBytes(32);
const keyOf = cacheKeyer(hmacKey);

for (const size of [1_000, 10_000, 20_000]) {
  const mappings = Array.from({ length: size }, (_, i) => ({
    provider: "infisical",
    project: "project",
    path: "/app",
    key: `SECRET_${i}`,
  }));
  let start = performance.now();
  const entries = new Map(mappings.map((m) => [keyOf(m), randomBytes(40)]));
  const keying = performance.now() - start;
  const best = { encode: Infinity, decode: Infinity };
  for (let round = 0; round < 10; round++) {
    start = performance.now();
    const file = await encodeCacheFile({ hmacKey, entries }, cipher);
    best.encode = Math.min(best.encode, performance.now() - start);
    start = performance.now();
    await decodeCacheFile(file, cipher);
    best.decode = Math.min(best.decode, performance.now() - start);
  }
  console.log(
    `${size} entries: cache keys ${keying.toFixed(1)} ms, encode ${best.encode.toFixed(1)} ms, decode ${best.decode.toFixed(1)} ms (best of 10)`,
  );
}
