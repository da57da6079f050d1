/** The gateway's view of the cluster: the shared client of `@tessera/protocol`. */
export {
  asStoreError,
  Cluster,
  type ClusterInit,
  type DriveResult,
  type Placement,
  type QuorumResults,
  STREAM_DEADLINE_MS,
} from '@tessera/protocol'
