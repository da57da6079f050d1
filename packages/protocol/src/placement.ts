/* Design notes

Everything here is part of the on-disk format: a drive's format.json records its pool, set and
slot, and an object's version record stores its shard distribution. Gateways and nodes compute
these from the map alone and must agree with each other and with every earlier release.

Cutting a pool into erasure sets. The pool's drives are written out as one sequence: zone by
zone (in the order each zone first appears in the pool), node by node inside a zone (map
order), drive by drive inside a node (map order). The sequence is then dealt out like cards to
the S = drives / n sets: position p goes to set p mod S, as slot floor(p / S). Dealing a
contiguous run of L drives over S sets gives every set floor(L / S) or ceil(L / S) of them, and
both a node's drives and a zone's drives form contiguous runs, so every set gets the fewest
drives of each node and of each zone that any layout can give it: ceil(drives of the node / S)
at most. With equal nodes, a set therefore spans min(n, nodes) nodes. It also means that if a
node holds more than `parity` drives of some set here, no layout avoids it, which is what the
map check in cluster-map.ts reports.

The order of drives inside the map is significant (it fixes slots); the map check rejects
anything computeLayout cannot cut, so a map that parses always has a layout.

Choosing a set and a shard order for an object. h = placementHash(bucket, key), a 64-bit
integer. set = h mod S (S of the object's pool); rotation r = (h >> 32) mod n; shard i lives
in slot (i + r) mod n. The rotation moves parity shards over every drive of the set, so no
drive takes all the parity writes.
*/
import { createHash } from 'node:crypto'
import type { ClusterMap, NodeSpec } from './cluster-map.ts'

/** One drive's place in the layout: what its format.json must say. */
export interface DriveSlot {
  /** Index of the pool in the map. */
  pool: number
  /** Index of the erasure set inside its pool. */
  set: number
  /** Position of the drive inside its set, 0..n-1. */
  slot: number
  /** Id of the node that owns the drive. */
  nodeId: string
  /** The drive folder on that node, as written in the map. */
  path: string
}

/** n = k + m drives that hold the shards of the same objects. */
export interface ErasureSet {
  pool: number
  /** Index of the set inside its pool. */
  index: number
  /** The set's n drives, indexed by slot. */
  drives: DriveSlot[]
}

/** Every pool's erasure sets, computed from the map by {@link computeLayout}. */
export interface ClusterLayout {
  /** Drives per set: erasure data + parity. */
  n: number
  /** Pools in map order; `index` is the position in the map. */
  pools: { index: number; sets: ErasureSet[] }[]
}

/**
 * A drive chosen for a set by {@link poolSetMembers}: the index of its node in the pool and
 * of the drive in that node's list.
 */
export interface SetMember {
  node: number
  drive: number
}

/**
 * The sets of one pool as node and drive indices, by set and then by slot (see the design
 * notes at the top of this file). The pool must have a positive multiple of n drives.
 *
 * @internal shared with the map check in cluster-map.ts; not part of the package API.
 */
export function poolSetMembers(
  nodes: readonly Pick<NodeSpec, 'drives' | 'zone'>[],
  n: number,
): SetMember[][] {
  const zones = new Map<string | undefined, number[]>()
  nodes.forEach((node, i) => {
    const group = zones.get(node.zone)
    if (group === undefined) zones.set(node.zone, [i])
    else group.push(i)
  })
  const sequence: SetMember[] = []
  for (const group of zones.values()) {
    for (const node of group) {
      const count = nodes[node]!.drives.length
      for (let drive = 0; drive < count; drive++) sequence.push({ node, drive })
    }
  }
  const sets = sequence.length / n
  return Array.from({ length: sets }, (_, set) =>
    Array.from({ length: n }, (_, slot) => sequence[set + slot * sets]!),
  )
}

/**
 * Cuts every pool of `map` into erasure sets of n = data + parity drives, each spanning as
 * many nodes and zones as the pool allows. Deterministic: depends only on the map's content
 * and order. Never throws for a map that {@link parseClusterMap} accepted.
 *
 * @throws RangeError when a pool's drive count is not a positive multiple of n.
 */
export function computeLayout(map: ClusterMap): ClusterLayout {
  const n = map.erasure.data + map.erasure.parity
  const pools = map.pools.map((pool, p) => {
    const drives = pool.nodes.reduce((sum, node) => sum + node.drives.length, 0)
    if (!Number.isInteger(n) || n < 1 || drives < n || drives % n !== 0) {
      throw new RangeError(
        `pool ${p} has ${drives} drives, which cannot be cut into sets of ${n}: ` +
          'check the map with parseClusterMap before computing its layout',
      )
    }
    const sets = poolSetMembers(pool.nodes, n).map(
      (members, s): ErasureSet => ({
        pool: p,
        index: s,
        drives: members.map(({ node, drive }, slot) => {
          const spec = pool.nodes[node]!
          return { pool: p, set: s, slot, nodeId: spec.id, path: spec.drives[drive]! }
        }),
      }),
    )
    return { index: p, sets }
  })
  return { n, pools }
}

/**
 * The 64-bit placement hash of an object: SHA-256 of the UTF-8 bytes of
 * `` `${bucket}/${key}` ``, whose first 8 bytes are read as an unsigned big-endian integer.
 * Part of the on-disk format: it must never change.
 */
export function placementHash(bucket: string, key: string): bigint {
  return createHash('sha256').update(`${bucket}/${key}`, 'utf8').digest().readBigUInt64BE(0)
}

/**
 * The erasure set of `pool` that holds `bucket`/`key`, and the object's shard distribution:
 * `distribution[i]` is the slot that holds shard i (data shards first, then parity). With
 * h = {@link placementHash}: set = h mod sets, and distribution[i] = (i + (h >> 32) mod n) mod n.
 *
 * @throws RangeError when the layout has no pool `pool`.
 */
export function placeObject(
  layout: ClusterLayout,
  pool: number,
  bucket: string,
  key: string,
): { set: ErasureSet; distribution: number[] } {
  const sets = layout.pools[pool]?.sets
  if (sets === undefined || sets.length === 0) {
    throw new RangeError(`no pool ${pool} in the layout (it has ${layout.pools.length} pools)`)
  }
  const h = placementHash(bucket, key)
  const n = layout.n
  const rotation = Number((h >> 32n) % BigInt(n))
  return {
    set: sets[Number(h % BigInt(sets.length))]!,
    distribution: Array.from({ length: n }, (_, i) => (i + rotation) % n),
  }
}

/** Every slot whose drive belongs to node `nodeId`, ordered by pool, set and slot. */
export function setsOfNode(layout: ClusterLayout, nodeId: string): DriveSlot[] {
  const out: DriveSlot[] = []
  for (const pool of layout.pools) {
    for (const set of pool.sets) {
      for (const drive of set.drives) if (drive.nodeId === nodeId) out.push(drive)
    }
  }
  return out
}
