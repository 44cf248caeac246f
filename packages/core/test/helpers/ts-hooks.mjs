// Lets a plain `node` child process run this workspace's TypeScript sources (Node strips
// the types itself): a relative "./x.js" import resolves to "./x.ts" when only that exists,
// and workspace packages resolve to their sources through the "@psi/source" condition.
import { register } from "node:module";

register(
  "data:text/javascript," +
    encodeURIComponent(`
export async function resolve(specifier, context, next) {
  const conditions = [...(context.conditions ?? []), "@psi/source"];
  try {
    return await next(specifier, { ...context, conditions });
  } catch (error) {
    if (error?.code !== "ERR_MODULE_NOT_FOUND" || !/^\\.{1,2}\\/.*\\.js$/.test(specifier)) throw error;
    return next(specifier.slice(0, -3) + ".ts", { ...context, conditions });
  }
}
`),
  import.meta.url,
);
