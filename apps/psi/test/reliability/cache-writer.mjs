// Child process of crash.test.ts: saves the cache again and again, one generation after
// another, until it is killed. Runs on the built packages (dist), as psi setup does.
// argv: <cache path> <key file> <first generation>
import { saveCache } from "@psi/cache";
import { createKeyfileCacheBackend } from "@psi/cache-keyfile";

const [path, keyFile, first] = process.argv.slice(2);

/** Generation g: keys K0..K(19+g), each value naming its generation (crash.test.ts has the same). */
function generation(gen) {
  const fetched = [];
  for (let k = 0; k < 20 + gen; k++) {
    fetched.push({
      mapping: { provider: "infisical", project: "crash", path: "/p", key: `K${k}` },
      value: Buffer.from(`g${gen}:k${k}:${"v".repeat(64)}`),
    });
  }
  return fetched;
}

const backend = createKeyfileCacheBackend({ path: keyFile });
await backend.open();
// Pipes are synchronous on Linux: each line is out before the next save starts.
process.stdout.write("ready\n");
for (let gen = Number(first); ; gen++) {
  await saveCache({ path, backend, prune: true, fetched: generation(gen) });
  process.stdout.write(`saved ${gen}\n`);
}
