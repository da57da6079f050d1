/**
 * Objects written and read through the real RPCs, the way the gateway will: placement, codec,
 * PutShard to every drive of the set, CommitVersion; ReadVersions, ReadShard and the codec's
 * decodeStream back. Enough for node tests and the RPC benchmark.
 */
import { randomUUID } from 'node:crypto'
import { decodeStream, ErasureLayout, encodeStream, InlineCodec } from '@tessera/codec'
import {
  CommitVersion,
  type DriveSlot,
  PutShard,
  placeObject,
  ReadShard,
  ReadVersions,
  type VersionRecord,
} from '@tessera/protocol'
import type { TestCluster } from './cluster.ts'

const codecP = InlineCodec.create()

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes
}

export interface Placed {
  set: { pool: number; index: number; drives: DriveSlot[] }
  distribution: number[]
  layout: ErasureLayout
}

export function place(c: TestCluster, bucket: string, key: string): Placed {
  const { set, distribution } = placeObject(c.layout, 0, bucket, key)
  const e = c.map.erasure
  return {
    set,
    distribution,
    layout: new ErasureLayout({ k: e.data, m: e.parity, blockSize: e.blockSize }),
  }
}

/** The drive holding shard i of an object. */
export function shardDrive(p: Placed, i: number): DriveSlot {
  return p.set.drives[p.distribution[i]!]!
}

/** Encodes `data` into the n framed shard files (in memory: tests use small objects). */
export async function shardFiles(layout: ErasureLayout, data: Uint8Array): Promise<Buffer[]> {
  const codec = await codecP
  const files: Buffer[][] = Array.from({ length: layout.n }, () => [])
  for await (const b of encodeStream(once(data), { layout, codec })) {
    for (const [i, s] of b.shards.entries())
      files[i]!.push(Buffer.from(b.headers[i]!), Buffer.from(s))
  }
  return files.map((f) => Buffer.concat(f))
}

export interface PutResult {
  record: VersionRecord
  placed: Placed
  results: PromiseSettledResult<{ replaced?: string; superseded?: boolean }>[]
}

/** Writes an object to every drive of its set; settles per drive (the caller judges quorum). */
export async function putObject(
  c: TestCluster,
  bucket: string,
  key: string,
  data: Uint8Array,
  opts: { versionId?: string; inline?: boolean; modTime?: number } = {},
): Promise<PutResult> {
  const placed = place(c, bucket, key)
  const files = await shardFiles(placed.layout, data)
  const inline = opts.inline ?? data.length < c.map.erasure.inlineBelow
  const dataDir = inline ? undefined : randomUUID()
  const tmpId = randomUUID()
  const record: VersionRecord = {
    bucket,
    key,
    versionId: opts.versionId ?? 'null',
    modTime: opts.modTime ?? Date.now() * 4096,
    size: data.length,
    etag: 'test',
    erasure: {
      k: placed.layout.k,
      m: placed.layout.m,
      blockSize: placed.layout.blockSize,
      distribution: placed.distribution,
      index: 0,
    },
    parts: [{ number: 1, size: data.length, etag: 'test' }],
    ...(dataDir ? { dataDir } : {}),
    deleteMarker: false,
  }
  const results = await Promise.allSettled(
    files.map(async (file, i) => {
      const d = shardDrive(placed, i)
      const peer = c.peer(d.nodeId)
      const ref = { pool: d.pool, set: d.set, slot: d.slot }
      const rec: VersionRecord = { ...record, erasure: { ...record.erasure, index: i } }
      if (inline) rec.inline = file
      else {
        await c.pool.call(
          peer,
          PutShard,
          { ...ref, bucket, key, dataDir: dataDir!, part: 1, tmpId, size: file.length },
          { body: once(file) },
        )
      }
      return c.pool.call(peer, CommitVersion, { ...ref, record: rec, ...(inline ? {} : { tmpId }) })
    }),
  )
  return { record, placed, results }
}

/** Reads an object (or a range) back through ReadVersions + ReadShard + decodeStream. */
export async function getObject(
  c: TestCluster,
  bucket: string,
  key: string,
  opts: {
    range?: { start: number; end: number }
    onShardError?: (shard: number, err: Error) => void
  } = {},
): Promise<Buffer> {
  const placed = place(c, bucket, key)
  const d0 = shardDrive(placed, 0)
  const { versions } = await c.pool.call(c.peer(d0.nodeId), ReadVersions, {
    pool: d0.pool,
    set: d0.set,
    slot: d0.slot,
    bucket,
    key,
    limit: 1,
  })
  const rec = versions[0]
  if (!rec)
    throw Object.assign(new Error(`no version of ${bucket}/${key}`), { code: 'VERSION_NOT_FOUND' })
  const codec = await codecP
  const out: Buffer[] = []
  for await (const piece of decodeStream({
    layout: placed.layout,
    codec,
    size: rec.size,
    ...(opts.range ? { range: opts.range } : {}),
    ...(opts.onShardError ? { onShardError: opts.onShardError } : {}),
    open: (shard, span) => {
      const d = shardDrive(placed, shard)
      const ref = { pool: d.pool, set: d.set, slot: d.slot }
      const stride = 8 + placed.layout.fullChunkBytes
      const firstBlock = Math.floor(span.offset / stride)
      const lastBlock = Math.floor((span.offset + span.length - 1) / stride)
      if (rec.inline !== undefined) {
        // Inline: this drive's record holds its shard bytes.
        return (async function* () {
          const { versions: vs } = await c.pool.call(c.peer(d.nodeId), ReadVersions, {
            ...ref,
            bucket,
            key,
            versionId: rec.versionId,
          })
          yield Buffer.from(vs[0]!.inline!).subarray(span.offset, span.offset + span.length)
        })()
      }
      return (async function* () {
        const { body } = await c.pool.callStream(c.peer(d.nodeId), ReadShard, {
          ...ref,
          bucket,
          key,
          dataDir: rec.dataDir!,
          part: 1,
          size: rec.size,
          k: rec.erasure.k,
          blockSize: rec.erasure.blockSize,
          firstBlock,
          lastBlock,
        })
        yield* body
      })()
    },
  })) {
    out.push(Buffer.from(piece))
  }
  return Buffer.concat(out)
}
