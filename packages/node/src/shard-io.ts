/**
 * Shard files on a drive: streaming a shard into tmp with fsync, moving it into place on
 * commit, and reading blocks back with every chunk verified. The write path awaits each disk
 * write before taking the next chunk from the RPC body, so a slow drive withholds RPC credit
 * and slows its sender; memory per stream stays at the RPC window.
 */
import { mkdir, open, readdir, rename, rm, rmdir } from 'node:fs/promises'
import { join } from 'node:path'
import { CHUNK_HASH_BYTES, type ChunkHasher, ErasureLayout } from '@tessera/codec'
import { type ShardRef, StoreError, toStoreError } from '@tessera/protocol'
import { ShardFileWriter } from './direct-io.ts'
import { type Drive, syncDir } from './drive.ts'

/** Bytes read from disk per read call when streaming a shard (whole chunks). */
const READ_BATCH_BYTES = 1024 * 1024

function ioError(err: unknown, drive: Drive, what: string): StoreError {
  const e = toStoreError(err)
  if (e.code === 'DRIVE_FULL') {
    return new StoreError(
      'DRIVE_FULL',
      `drive ${drive.path} is full (${what})`,
      { drive: drive.path },
      err,
    )
  }
  return e
}

/**
 * Streams `body` into tmp/<tmpId>/part.<N>, fsyncs it, and returns the byte count, which must
 * be exactly `size`. On any failure the partial file is removed.
 */
export async function writeShard(
  drive: Drive,
  req: ShardRef & { tmpId: string; size: number },
  body: AsyncIterable<Uint8Array>,
): Promise<number> {
  drive.shardPath(req.bucket, req.key, req.dataDir, req.part) // validates the names
  const dir = drive.tmpPath(req.tmpId)
  const file = join(dir, `part.${req.part}`)
  let written = 0
  try {
    await mkdir(dir, { recursive: true })
    const out = await ShardFileWriter.create(file, drive.slabs, drive.directIo)
    try {
      for await (const chunk of body) {
        if (written + chunk.length > req.size) {
          throw new StoreError(
            'BODY_TOO_LARGE',
            `shard body exceeds the declared ${req.size} bytes`,
            { drive: drive.path },
          )
        }
        await out.write(chunk)
        written += chunk.length
      }
      if (written !== req.size) {
        throw new StoreError(
          'INVALID_REQUEST',
          `shard body ended after ${written} of ${req.size} bytes`,
          { drive: drive.path },
        )
      }
      await out.finish()
    } finally {
      await out.close()
    }
    return written
  } catch (err) {
    await rm(file, { force: true }).catch(() => {})
    // The tmp folder goes too, unless another part of the same write is in it.
    await rmdir(dir).catch(() => {})
    throw ioError(err, drive, `writing ${req.bucket}/${req.key} part ${req.part}`)
  }
}

/**
 * Moves every shard written under tmp/<tmpId> into the data dir and makes the move durable.
 * Returns false when there was nothing under that tmp id.
 */
export async function commitShards(
  drive: Drive,
  tmpId: string,
  bucket: string,
  key: string,
  dataDir: string,
): Promise<boolean> {
  const from = drive.tmpPath(tmpId)
  const to = drive.dataPath(bucket, key, dataDir)
  let files: string[]
  try {
    files = await readdir(from)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
  await mkdir(to, { recursive: true })
  for (const f of files) await rename(join(from, f), join(to, f))
  await syncDir(to)
  await rm(from, { recursive: true, force: true })
  return true
}

/**
 * The framed chunks of blocks first..last of a shard file, read in batches, each chunk's
 * xxh64 checked before it is yielded. A mismatch ends the stream with CHECKSUM_MISMATCH naming
 * the drive, the object and the block.
 */
export async function* readShardBlocks(
  drive: Drive,
  req: ShardRef & {
    size: number
    k: number
    blockSize: number
    firstBlock: number
    lastBlock: number
  },
  h64: ChunkHasher,
  opts: {
    /**
     * Read every batch into the same buffer: for a consumer that is done with a frame when it
     * asks for the next one (the RPC body sender seals each frame as it sends it). Saves a
     * buffer of up to READ_BATCH_BYTES per batch, and the garbage collections they cause.
     */
    reuseBuffer?: boolean
  } = {},
): AsyncGenerator<Uint8Array> {
  const layout = new ErasureLayout({ k: req.k, m: 0, blockSize: req.blockSize })
  const blocks = layout.blockCount(req.size)
  if (
    !Number.isInteger(req.firstBlock) ||
    !Number.isInteger(req.lastBlock) ||
    req.firstBlock < 0 ||
    req.lastBlock < req.firstBlock ||
    req.lastBlock >= blocks
  ) {
    throw new StoreError(
      'INVALID_REQUEST',
      `blocks ${req.firstBlock}..${req.lastBlock} are outside 0..${blocks - 1}`,
    )
  }
  const path = drive.shardPath(req.bucket, req.key, req.dataDir, req.part)
  const fh = await open(path, 'r').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') {
      throw new StoreError(
        'SHARD_NOT_FOUND',
        `no shard file for ${req.bucket}/${req.key} part ${req.part} on drive ${drive.path}`,
        { drive: drive.path, bucket: req.bucket, key: req.key, part: req.part },
      )
    }
    throw ioError(err, drive, 'opening a shard')
  })
  try {
    let block = req.firstBlock
    let offset = layout.shardSpan(req.size, block, block).offset
    let spare: Buffer | undefined
    while (block <= req.lastBlock) {
      // Whole frames up to about READ_BATCH_BYTES (at least one).
      const frames: number[] = []
      let bytes = 0
      for (let b = block; b <= req.lastBlock; b++) {
        const len = CHUNK_HASH_BYTES + layout.chunkBytes(layout.blockLength(req.size, b))
        if (frames.length > 0 && bytes + len > READ_BATCH_BYTES) break
        frames.push(len)
        bytes += len
      }
      const buf =
        spare !== undefined && spare.length >= bytes
          ? spare.subarray(0, bytes)
          : Buffer.allocUnsafeSlow(bytes)
      let got = 0
      while (got < bytes) {
        const { bytesRead } = await fh.read(buf, got, bytes - got, offset + got)
        if (bytesRead === 0) break
        got += bytesRead
      }
      let at = 0
      for (const len of frames) {
        if (at + len > got) {
          throw new StoreError(
            'CHECKSUM_MISMATCH',
            `shard of ${req.bucket}/${req.key} part ${req.part} on drive ${drive.path} is truncated at block ${block}`,
            { drive: drive.path, bucket: req.bucket, key: req.key, part: req.part, block },
          )
        }
        const frame = buf.subarray(at, at + len)
        const expected = frame.readBigUInt64LE(0)
        const actual = h64(frame.subarray(CHUNK_HASH_BYTES))
        if (expected !== actual) {
          throw new StoreError(
            'CHECKSUM_MISMATCH',
            `shard of ${req.bucket}/${req.key} part ${req.part} on drive ${drive.path}: block ${block} ` +
              'fails its checksum',
            { drive: drive.path, bucket: req.bucket, key: req.key, part: req.part, block },
          )
        }
        yield frame
        at += len
        block++
      }
      offset += got
      if (opts.reuseBuffer && (spare === undefined || buf.buffer !== spare.buffer)) spare = buf
    }
  } finally {
    await fh.close()
  }
}

/** Raw bytes [offset, offset + length) of a shard file, unverified. */
export async function* readRaw(
  drive: Drive,
  req: ShardRef & { offset: number; length: number },
): AsyncGenerator<Uint8Array> {
  const path = drive.shardPath(req.bucket, req.key, req.dataDir, req.part)
  const fh = await open(path, 'r').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') {
      throw new StoreError('SHARD_NOT_FOUND', `no shard file ${path}`, { drive: drive.path })
    }
    throw err
  })
  try {
    let at = req.offset
    const end = req.offset + req.length
    while (at < end) {
      const buf = Buffer.allocUnsafeSlow(Math.min(READ_BATCH_BYTES, end - at))
      const { bytesRead } = await fh.read(buf, 0, buf.length, at)
      if (bytesRead === 0) break
      yield buf.subarray(0, bytesRead)
      at += bytesRead
    }
  } finally {
    await fh.close()
  }
}

/** Replaces a shard file with `body` (tmp, fsync, rename over, fsync the folder). */
export async function rewriteShard(
  drive: Drive,
  req: ShardRef & { size: number },
  body: AsyncIterable<Uint8Array>,
  tmpId: string,
): Promise<number> {
  const bytes = await writeShard(drive, { ...req, tmpId }, body)
  const target = drive.dataPath(req.bucket, req.key, req.dataDir)
  await mkdir(target, { recursive: true })
  await rename(join(drive.tmpPath(tmpId), `part.${req.part}`), join(target, `part.${req.part}`))
  await syncDir(target)
  await rm(drive.tmpPath(tmpId), { recursive: true, force: true })
  return bytes
}
