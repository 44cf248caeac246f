// Replaced with the package's version by the build (tsup `define`); undefined from source.
declare const PSI_BUILD_VERSION: string | undefined;

/** The CLI's version: inlined by the build, read from package.json when run from source. */
export const VERSION: string =
  typeof PSI_BUILD_VERSION === "string"
    ? PSI_BUILD_VERSION
    : (
        process.getBuiltinModule("node:module").createRequire(import.meta.url)(
          "../package.json",
        ) as { version: string }
      ).version;
