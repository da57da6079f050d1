/**
 * @packageDocumentation
 * `@tessera/node`: the storage daemon. `tessera-node keygen` makes its identity;
 * `tessera-node start --config node.yaml` opens (or formats) its drives and serves the RPCs of
 * `@tessera/protocol` to the gateways and nodes the cluster map lists.
 *
 * @example
 * ```ts
 * import { StorageNode } from '@tessera/node'
 * const node = await StorageNode.start({ map, mapHash, nodeId: 'n1', identity }, { logger })
 * ```
 */
export { ConfigError, DEFAULTS, ENV, loadConfig, type NodeConfig } from './config.ts'
export {
  AlignedSlabs,
  DEFAULT_DIRECT_WRITE_BYTES,
  DIRECT_IO_SLAB_BYTES,
  type DirectSupport,
  probeDirectIo,
  ShardFileWriter,
} from './direct-io.ts'
export { checkBucketName, Drive, type FormatFile, objectHash } from './drive.ts'
export {
  type CommitStats,
  GroupCommitter,
  META_ERROR_CODES,
  type MetaErrorCode,
  type MetaOp,
  MetaStore,
  MetaStoreError,
} from './meta-store.ts'
export { commitShards, readShardBlocks, writeShard } from './shard-io.ts'
export {
  type Logger,
  StorageNode,
  type StorageNodeComponents,
  type StorageNodeInit,
} from './storage-node.ts'
