/**
 * @packageDocumentation
 * `@tessera/protocol`: the contract between nodes and gateways: the records they exchange,
 * RPC message schemas, framing, the secure channel and wire error codes. Both sides import
 * these definitions; neither imports the other.
 */

/** Version exchanged in the hello frame; bumped on any incompatible wire change. */
export const PROTOCOL_VERSION = 1

export {
  type BucketRecord,
  type ErasureInfo,
  HLC_COUNTER_SPAN,
  type Hlc,
  hlcMillis,
  type PartInfo,
  type PartRecord,
  type UploadRecord,
  type VersionRecord,
} from './records.ts'
