// Writes docs/configuration.md from the configuration schema (`pnpm docs:config`, which
// builds @psi/core first). packages/core/test/config-doc.test.ts fails when the committed
// file differs from what this writes.
import { writeFile } from "node:fs/promises";
import { renderConfigReference } from "@psi/core";

const target = new URL("../docs/configuration.md", import.meta.url);
await writeFile(target, renderConfigReference());
process.stdout.write(`wrote ${target.pathname}\n`);
