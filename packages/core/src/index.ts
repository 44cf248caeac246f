export * from "./config-schema.js";
export * from "./contracts.js";
export * from "./errors.js";
export * from "./logger-types.js";
export * from "./mapping.js";
export * from "./paths.js";
export * from "./secret-id.js";
