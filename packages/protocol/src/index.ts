/**
 * @packageDocumentation
 * `@tessera/protocol`: the contract between nodes and gateways: the records they exchange,
 * RPC message schemas, framing, the secure channel and wire error codes. Both sides import
 * these definitions; neither imports the other.
 */

export {
  BufferPool,
  type BufferPoolInit,
  type BufferPoolStats,
  POOL_MAX_FREE_BYTES,
  POOL_MIN_BYTES,
} from './buffer-pool.ts'
export {
  asStoreError,
  Cluster,
  type ClusterInit,
  type DriveResult,
  HEDGE_MS,
  type Placement,
  type QuorumResults,
  STREAM_DEADLINE_MS,
} from './cluster-client.ts'

export {
  type ClusterMap,
  ClusterMapError,
  type ClusterMapProblem,
  type ErasureSpec,
  loadClusterMap,
  mapHash,
  type NodeSpec,
  type PoolSpec,
  parseByteSize,
  parseClusterMap,
  stringifyClusterMap,
} from './cluster-map.ts'
export {
  ConfigError,
  type ConfigSource,
  DAEMON_ENV,
  DAEMON_V8_FLAGS,
  daemonEnv,
  LOG_LEVELS,
  readConfigSource,
  STOP_WITH_STDIN_FLAG,
  stopOnSignals,
} from './daemon.ts'
export {
  type ErrorDetails,
  fromWire,
  isStoreError,
  STORE_ERROR_CODES,
  StoreError,
  type StoreErrorCode,
  toStoreError,
  type WireError,
} from './errors.ts'
export {
  generateIdentity,
  type Identity,
  IdentityError,
  type IdentityErrorCode,
  identityFromBytes,
  loadIdentity,
  saveIdentity,
} from './identity.ts'
export * from './messages.ts'
export { type Peer, PeerPool, type PeerPoolInit } from './peer-pool.ts'
export {
  type ClusterLayout,
  computeLayout,
  type DriveSlot,
  type ErasureSet,
  placementHash,
  placeObject,
  setsOfNode,
} from './placement.ts'
export {
  type AclGrant,
  type AclOwner,
  type AclPermission,
  type BucketRecord,
  bucketStamp,
  type ErasureInfo,
  HLC_COUNTER_SPAN,
  type Hlc,
  hlcMillis,
  type ListedVersion,
  laterRecord,
  latestMeta,
  listedVersion,
  type PartInfo,
  type PartRecord,
  type UploadRecord,
  type VersionRecord,
} from './records.ts'
export {
  BODY_CHUNK_BYTES,
  BODY_WINDOW_BYTES,
  type CallContext,
  type CallOptions,
  DEFAULT_TIMEOUT_MS,
  defineRpc,
  type FrameChannel,
  type Handler,
  RpcClient,
  type RpcDef,
  RpcServer,
  type WithBody,
  withBody,
} from './rpc.ts'
export {
  CHANNEL_ERROR_CODES,
  ChannelError,
  type ChannelErrorCode,
  type ConnectSecureInit,
  connectSecure,
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  type Hello,
  type ListenSecureInit,
  listenSecure,
  MAX_FRAME_BYTES,
  type SecureChannel,
} from './secure-channel.ts'
export { PROTOCOL_VERSION } from './version.ts'
