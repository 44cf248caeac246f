import type { Provider, PsiContext } from "@psi/core";
import { PsiError, parseMapping } from "@psi/core";
import { createLookupService, type LookupService } from "@psi/lookup-server";
import type { Command } from "commander";
import type { App } from "../app.js";
import { providerFactory } from "../wiring.js";
import { openServeCache } from "./serve.js";

/**
 * Providers that open on their first lookup: a one-shot lookup answered from the cache,
 * or by the local provider, never logs in to Infisical or opens an HSM it does not need.
 */
function lazyProviders(context: PsiContext): {
  providers: Map<string, Provider>;
  close(): Promise<void>;
} {
  const providers = new Map<string, Provider>();
  const opened: Provider[] = [];
  for (const [name, block] of Object.entries(context.config.providers ?? {})) {
    if (block === undefined) continue;
    let ready: Promise<Provider> | undefined;
    const open = () => {
      ready ??= (async () => {
        const provider = (await providerFactory(name))(context);
        await provider.open();
        opened.push(provider);
        return provider;
      })();
      return ready;
    };
    providers.set(name, {
      name,
      open: async () => {
        await open();
      },
      close: async () => {},
      lookup: async (mapping, options) => (await open()).lookup(mapping, options),
    });
  }
  return {
    providers,
    async close() {
      await Promise.allSettled(opened.map((provider) => provider.close()));
    },
  };
}

function secretId(app: App): string {
  const id = app.env["SECRET_ID"];
  if (id === undefined) {
    throw new PsiError("secret_id.missing", "SECRET_ID is not set", {
      hint: "Podman's shell driver sets it; by hand: SECRET_ID=<hex id> psi secret lookup",
    });
  }
  return id;
}

/** Driver commands log warnings and errors only, unless asked: Podman runs them per secret. */
function quietLogs(app: App): void {
  const globals = app.globals();
  if (globals.logLevel === undefined && !globals.debug)
    app.setGlobals({ ...globals, logLevel: "warn" });
}

async function stateService(app: App): Promise<LookupService> {
  const loaded = await app.loadConfig();
  return createLookupService({
    stateDir: loaded.paths.stateDir,
    providers: new Map(),
    logger: app.logger(),
  });
}

async function readAll(stdin: App["io"]["stdin"]): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) {
    chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : Buffer.from(chunk as Uint8Array));
  }
  return Buffer.concat(chunks);
}

/** `psi secret store|lookup|delete|list`: Podman's shell driver, one-shot, no serve needed (SPEC §5). */
export function registerSecret(program: Command, app: App): void {
  const secret = program
    .command("secret")
    .description(
      "Podman shell secret driver, one-shot (SECRET_ID from the environment; no psi serve needed)",
    );

  secret
    .command("store")
    .description("write the mapping on stdin to state_dir/$SECRET_ID")
    .action(async () => {
      quietLogs(app);
      const id = secretId(app);
      const service = await stateService(app);
      service.checkId(id);
      const mapping = await readAll(app.io.stdin);
      // what /store accepts: a JSON object with a string provider (nothing written otherwise)
      parseMapping(mapping, `the mapping on stdin for secret ${id}`);
      await service.store(id, mapping);
    });

  secret
    .command("lookup")
    .description("print the plaintext of secret $SECRET_ID (cache, then provider)")
    .action(async () => {
      quietLogs(app);
      const id = secretId(app);
      // A bad ID is refused before the cache or any provider is opened.
      (await stateService(app)).checkId(id);
      const loaded = await app.loadConfig();
      const context = await app.context();
      const lazy = lazyProviders(context);
      const { cache, backend } = await openServeCache(app, loaded, app.logger());
      try {
        const service = createLookupService({
          stateDir: loaded.paths.stateDir,
          providers: lazy.providers,
          cache,
          logger: app.logger(),
        });
        const answer = await service.lookup(id);
        app.io.stdout.write(answer.value);
      } finally {
        await lazy.close();
        await backend?.close();
      }
    });

  secret
    .command("delete")
    .description("remove state_dir/$SECRET_ID (absent is fine)")
    .action(async () => {
      quietLogs(app);
      const id = secretId(app);
      (await stateService(app)).remove(id);
    });

  secret
    .command("list")
    .description("print the secret IDs with a mapping, one per line")
    .action(async () => {
      quietLogs(app);
      const ids = (await stateService(app)).list();
      if (ids.length > 0) app.io.stdout.write(`${ids.join("\n")}\n`);
    });
}
