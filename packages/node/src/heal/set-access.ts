/**
 * How healing reaches the drives of an erasure set: drives of this node directly (their
 * MetaStore and shard files, no RPC to ourselves), the others through the {@link Cluster}
 * client over the secure channel, as a gateway would.
 */
import type { ChunkHasher } from '@tessera/codec'
import {
  type BucketRecord,
  type Cluster,
  type DriveRef,
  type DriveSlot,
  type ErasureSet,
  ListBuckets,
  ListRange,
  type ListResponse,
  ListSystem,
  ReadShard,
  ReadVersions,
  StoreError,
  type VersionRecord,
} from '@tessera/protocol'
import type { Drive } from '../drive.ts'
import { readShardBlocks } from '../shard-io.ts'

/** The key of a drive in maps: `pool/set/slot`. */
export const driveKey = (r: DriveRef): string => `${r.pool}/${r.set}/${r.slot}`

/** What a version listing page needs. */
export interface VersionPageRequest {
  bucket: string
  limit: number
  keyMarker?: string
  versionIdMarker?: string
}

/** What a shard read needs: the part's object bytes and erasure parameters, and the blocks. */
export interface ShardReadRequest {
  bucket: string
  key: string
  dataDir: string
  part: number
  size: number
  k: number
  blockSize: number
  firstBlock: number
  lastBlock: number
}

export class SetAccess {
  readonly cluster: Cluster
  readonly #local: ReadonlyMap<string, Drive>
  readonly #h64: ChunkHasher

  constructor(cluster: Cluster, local: ReadonlyMap<string, Drive>, h64: ChunkHasher) {
    this.cluster = cluster
    this.#local = local
    this.#h64 = h64
  }

  /** The erasure set a drive of this node belongs to. */
  setOf(ref: DriveRef): ErasureSet {
    const set = this.cluster.layout.pools[ref.pool]?.sets[ref.set]
    if (set === undefined) {
      throw new StoreError('DRIVE_NOT_FOUND', `no set ${ref.pool}/${ref.set} in the layout`)
    }
    return set
  }

  /** The other n - 1 drives of a drive's set. */
  othersOf(ref: DriveRef): DriveSlot[] {
    return this.setOf(ref).drives.filter((d) => d.slot !== ref.slot)
  }

  /** This node's Drive for a slot, when it owns it. */
  local(slot: DriveRef): Drive | undefined {
    return this.#local.get(driveKey(slot))
  }

  /** Versions of a key on a drive, newest first (or the one named), with inline bytes. */
  async readVersions(
    slot: DriveSlot,
    bucket: string,
    key: string,
    versionId?: string,
  ): Promise<VersionRecord[]> {
    const d = this.local(slot)
    if (d !== undefined) {
      if (versionId === undefined) return d.meta.getVersions(bucket, key)
      const v = await d.meta.getVersion(bucket, key, versionId)
      return v ? [v] : []
    }
    const r = await this.cluster.call(slot, ReadVersions, {
      bucket,
      key,
      ...(versionId !== undefined ? { versionId } : {}),
    })
    return r.versions
  }

  /** One page of every version of a bucket on a drive, in key order, newest first per key. */
  async listVersions(slot: DriveSlot, req: VersionPageRequest): Promise<ListResponse> {
    const d = this.local(slot)
    if (d !== undefined) return d.meta.listVersions(req)
    return this.cluster.call(slot, ListRange, { ...req, versions: true })
  }

  async listBuckets(slot: DriveSlot): Promise<BucketRecord[]> {
    const d = this.local(slot)
    if (d !== undefined) return d.meta.listBuckets()
    return (await this.cluster.call(slot, ListBuckets, {})).buckets
  }

  async listSystem(slot: DriveSlot, prefix: string): Promise<{ key: string; value: unknown }[]> {
    const d = this.local(slot)
    if (d !== undefined) return d.meta.listSystem(prefix)
    return (await this.cluster.call(slot, ListSystem, { prefix })).entries
  }

  /**
   * The framed chunks of blocks first..last of a shard file, each verified by the drive's node
   * before it is sent (a bad chunk ends the stream with CHECKSUM_MISMATCH).
   */
  shardStream(
    slot: DriveSlot,
    req: ShardReadRequest,
    signal?: AbortSignal,
  ): AsyncIterable<Uint8Array> {
    const d = this.local(slot)
    if (d !== undefined) return readShardBlocks(d, { ...slot, ...req }, this.#h64)
    const cluster = this.cluster
    return (async function* () {
      const { body } = await cluster.callStream(slot, ReadShard, req, signal ? { signal } : {})
      yield* body
    })()
  }
}
