/**
 * Checks of one drive's own copy of a version: the shard bytes inline in the record, or one
 * shard file per part, present with the size the layout gives and (deep) every chunk matching
 * its xxh64. Nothing here repairs; the answer says which parts are bad and why.
 */
import { open, stat } from 'node:fs/promises'
import { CHUNK_HASH_BYTES, type ChunkHasher, ErasureLayout } from '@tessera/codec'
import type { VersionRecord } from '@tessera/protocol'
import type { Drive } from '../drive.ts'

/** Bytes read per read call when verifying a shard file (whole frames). */
const VERIFY_BATCH_BYTES = 1024 * 1024

/** What is wrong with a drive's copy of a version's data; empty `badParts` when nothing. */
export interface DataCheck {
  /** Part numbers whose shard (file or inline bytes) is missing, short, long or corrupt. */
  badParts: number[]
  /** Why, for the first bad part. */
  reason?: string
}

export function layoutOf(rec: Pick<VersionRecord, 'erasure'>): ErasureLayout {
  return new ErasureLayout({ k: rec.erasure.k, m: rec.erasure.m, blockSize: rec.erasure.blockSize })
}

/** True when the record's data lives in the record (small objects), not in files. */
export function isInline(rec: VersionRecord): boolean {
  return rec.dataDir === undefined
}

/**
 * Verifies framed chunks `[xxh64][chunk]` of a shard of an object (part) of `size` bytes held
 * in memory; returns why it is bad, or undefined when every chunk checks out.
 */
export function verifyFrames(
  bytes: Uint8Array,
  layout: ErasureLayout,
  size: number,
  h64: ChunkHasher,
): string | undefined {
  const expected = layout.shardFileBytes(size)
  if (bytes.length !== expected) return `${bytes.length} bytes instead of ${expected}`
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let at = 0
  const blocks = layout.blockCount(size)
  for (let b = 0; b < blocks; b++) {
    const len = layout.chunkBytes(layout.blockLength(size, b))
    if (
      buf.readBigUInt64LE(at) !==
      h64(buf.subarray(at + CHUNK_HASH_BYTES, at + CHUNK_HASH_BYTES + len))
    )
      return `block ${b} fails its checksum`
    at += CHUNK_HASH_BYTES + len
  }
  return undefined
}

/** Verifies every chunk of a shard file, reading it in batches of whole frames. */
async function verifyFile(
  path: string,
  layout: ErasureLayout,
  size: number,
  h64: ChunkHasher,
  signal?: AbortSignal,
): Promise<string | undefined> {
  const fh = await open(path, 'r')
  try {
    const blocks = layout.blockCount(size)
    let offset = 0
    let block = 0
    let buf = Buffer.allocUnsafeSlow(0)
    while (block < blocks) {
      signal?.throwIfAborted()
      const frames: number[] = []
      let bytes = 0
      for (let b = block; b < blocks; b++) {
        const len = CHUNK_HASH_BYTES + layout.chunkBytes(layout.blockLength(size, b))
        if (frames.length > 0 && bytes + len > VERIFY_BATCH_BYTES) break
        frames.push(len)
        bytes += len
      }
      if (buf.length < bytes) buf = Buffer.allocUnsafeSlow(bytes)
      let got = 0
      while (got < bytes) {
        const { bytesRead } = await fh.read(buf, got, bytes - got, offset + got)
        if (bytesRead === 0) return `truncated at block ${block}`
        got += bytesRead
      }
      let at = 0
      for (const len of frames) {
        const frame = buf.subarray(at, at + len)
        if (frame.readBigUInt64LE(0) !== h64(frame.subarray(CHUNK_HASH_BYTES)))
          return `block ${block} fails its checksum`
        at += len
        block++
      }
      offset += bytes
    }
    return undefined
  } finally {
    await fh.close()
  }
}

/**
 * Checks a drive's copy of the data of `rec` (which need not be the drive's own record: the
 * files are found by the record's dataDir and part numbers). Delete markers have no data.
 * `inline`: the drive's own inline bytes for an inline object (from its own record), if any.
 */
export async function checkData(
  drive: Drive,
  rec: VersionRecord,
  opts: { deep: boolean; h64: ChunkHasher; inline?: Uint8Array | undefined; signal?: AbortSignal },
): Promise<DataCheck> {
  if (rec.deleteMarker) return { badParts: [] }
  const layout = layoutOf(rec)
  if (isInline(rec)) {
    if (opts.inline === undefined) return { badParts: [1], reason: 'no inline shard' }
    // Inline shards are small and already in memory: always verified.
    const why = verifyFrames(opts.inline, layout, rec.size, opts.h64)
    return why === undefined ? { badParts: [] } : { badParts: [1], reason: `inline shard: ${why}` }
  }
  const badParts: number[] = []
  let reason: string | undefined
  for (const part of rec.parts) {
    const path = drive.shardPath(rec.bucket, rec.key, rec.dataDir!, part.number)
    const expected = layout.shardFileBytes(part.size)
    let why: string | undefined
    try {
      const st = await stat(path)
      if (st.size !== expected) why = `${st.size} bytes instead of ${expected}`
      else if (opts.deep && part.size > 0)
        why = await verifyFile(path, layout, part.size, opts.h64, opts.signal)
    } catch (err) {
      if (opts.signal?.aborted) throw err
      why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : (err as Error).message
    }
    if (why !== undefined) {
      badParts.push(part.number)
      reason ??= `part ${part.number}: ${why}`
    }
  }
  return reason === undefined ? { badParts } : { badParts, reason }
}
