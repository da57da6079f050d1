/**
 * Reading a shard file back block by block (what ReadShard streams): every framed chunk
 * checked and handed out whole, and, for the RPC sender, one read buffer for all batches.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { CHUNK_HASH_BYTES, ErasureLayout, InlineCodec, loadChunkHasher } from '@tessera/codec'
import t from 'tap'
import { Drive } from '../src/drive.ts'
import { readShardBlocks } from '../src/shard-io.ts'

t.test('blocks come back checked; with reuseBuffer every batch uses one buffer', async (t) => {
  let d: Drive | undefined
  // Before t.testdir(), so tap removes the folder only after the drive's store is closed.
  t.teardown(() => d?.close())
  const dir = t.testdir()
  d = await Drive.open({ path: dir, cluster: 'c', ref: { pool: 0, set: 0, slot: 0 } })
  const h64 = await loadChunkHasher()
  const codec = await InlineCodec.create()
  // k = 1: each block's chunk is the block itself; 1 MiB blocks make each frame its own batch.
  const k = 1
  const blockSize = 1024 * 1024
  const size = 3 * blockSize + 1000
  const layout = new ErasureLayout({ k, m: 1, blockSize })
  const data = Buffer.alloc(size)
  for (let i = 0; i < size; i++) data[i] = (i * 31 + (i >> 12)) & 0xff
  const frames: Buffer[] = []
  for (let b = 0; b < layout.blockCount(size); b++) {
    const chunk = data.subarray(b * blockSize, Math.min(size, (b + 1) * blockSize))
    const { hashes } = await codec.hash([new Uint8Array(chunk).slice().buffer])
    const head = Buffer.alloc(CHUNK_HASH_BYTES)
    head.writeBigUInt64LE(hashes[0]!, 0)
    frames.push(head, chunk)
  }
  const ref = {
    pool: 0,
    set: 0,
    slot: 0,
    bucket: 'bucket-1',
    key: 'k',
    dataDir: 'datadir-1',
    part: 1,
  }
  const path = d.shardPath(ref.bucket, ref.key, ref.dataDir, ref.part)
  await mkdir(dirname(path), { recursive: true })
  await writeFile(path, Buffer.concat(frames))
  const req = { ...ref, size, k, blockSize, firstBlock: 0, lastBlock: 3 }

  for (const reuseBuffer of [false, true]) {
    const buffers = new Set<ArrayBufferLike>()
    const out: Buffer[] = []
    for await (const frame of readShardBlocks(d, req, h64, { reuseBuffer })) {
      buffers.add(frame.buffer)
      // Copied before asking for the next frame, as the RPC sender seals each frame it sends.
      out.push(Buffer.from(frame.subarray(CHUNK_HASH_BYTES)))
    }
    t.ok(Buffer.concat(out).equals(data), `reuseBuffer ${reuseBuffer}: the bytes read back`)
    t.equal(
      buffers.size,
      reuseBuffer ? 1 : 4,
      `reuseBuffer ${reuseBuffer}: buffers used for 4 batches`,
    )
  }
})
