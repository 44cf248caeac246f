// @psi/ops: PSI's host-level operations as library functions with typed results. The CLI
// (apps/psi) parses arguments, calls these and renders; a Cockpit plugin, an Ansible
// module or a deployment script can call the same functions.
export {
  getOnSocket,
  lookupSocketPath,
  SOCKET_TIMEOUT_MS,
  type SocketAnswer,
  socketProblem,
  type WaitForServeLoadOptions,
  waitForServeLoad,
} from "./socket.js";
export {
  type CacheReport,
  collectStatus,
  type DriftReport,
  type ProviderReport,
  type ServeMetrics,
  type ServeStatus,
  type StatusIssue,
  type StatusOptions,
  type StatusReport,
} from "./status.js";
