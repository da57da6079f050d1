/**
 * @packageDocumentation
 * `@tessera/protocol`: the contract between nodes and gateways (RPC message schemas, framing,
 * wire error codes). Filled by the storage-node issue; until then it only states the version.
 */

/** Version exchanged in the hello frame; bumped on any incompatible wire change. */
export const PROTOCOL_VERSION = 1
