// The codec's block streaming API against real files: shard files written to n folders (one
// per "drive"), read back with fs streams opened at the span the layout gives, a byte flipped
// on disk and a drive folder removed, as a node will see them.
import { createReadStream } from 'node:fs'
import { mkdir, open, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { CodecPool, decodeStream, ErasureLayout, encodeStream, isCodecError } from '@tessera/codec'
import t from 'tap'

const K = 4
const M = 2
const SIZE = 5 * 1024 * 1024 + 12345

function source(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  return (async function* () {
    for (let at = 0; at < bytes.length; at += 65536) yield bytes.subarray(at, at + 65536)
  })()
}

t.test('objects survive on disk: lost drives, flipped bytes, ranges', async (t) => {
  const root = t.testdir()
  const drives = Array.from({ length: K + M }, (_, i) => join(root, `d${i}`))
  const pool = new CodecPool({ threads: 2 })
  t.teardown(() => pool.close())
  const layout = new ErasureLayout({ k: K, m: M, blockSize: 1024 * 1024 })
  const data = new Uint8Array(SIZE)
  for (let i = 0; i < SIZE; i++) data[i] = (i * 2654435761) >>> 24
  const files = await Promise.all(
    drives.map(async (d) => {
      await mkdir(d, { recursive: true })
      return open(join(d, 'part.1'), 'w')
    }),
  )
  for await (const block of encodeStream(source(data), { layout, codec: pool })) {
    // One writev per shard file: header and chunk as two views, no concatenation.
    await Promise.all(files.map((f, i) => f.writev([block.headers[i]!, block.shards[i]!])))
    block.release()
  }
  await Promise.all(
    files.map(async (f) => {
      await f.sync()
      await f.close()
    }),
  )
  for (const d of drives) {
    t.equal((await stat(join(d, 'part.1'))).size, layout.shardFileBytes(SIZE), `${d} size`)
  }

  const read = async (range?: { start: number; end: number }) => {
    const errors: [number, string | undefined][] = []
    const parts: Buffer[] = []
    for await (const piece of decodeStream({
      layout,
      codec: pool,
      size: SIZE,
      ...(range ? { range } : {}),
      open: (shard, span) => {
        const path = join(drives[shard]!, 'part.1')
        const s = createReadStream(path, {
          start: span.offset,
          end: span.offset + span.length - 1,
          highWaterMark: 256 * 1024,
        })
        return s as AsyncIterable<Uint8Array>
      },
      onShardError: (shard, err) => errors.push([shard, (err as { code?: string }).code]),
    })) {
      parts.push(Buffer.from(piece))
    }
    return { bytes: Buffer.concat(parts), errors }
  }

  const whole = await read()
  t.equal(Buffer.compare(whole.bytes, data), 0, 'read back exactly')
  t.same(whole.errors, [])

  const r = await read({ start: 2_500_000, end: 3_700_001 })
  t.equal(
    Buffer.compare(r.bytes, data.subarray(2_500_000, 3_700_001)),
    0,
    'a range reads back exactly',
  )

  // Flip one byte of block 3 in shard 1 on disk.
  const path1 = join(drives[1]!, 'part.1')
  const bytes1 = await readFile(path1)
  bytes1[3 * (8 + layout.fullChunkBytes) + 8 + 99]! ^= 0x10
  await writeFile(path1, bytes1)
  // Remove drive 0's file entirely.
  await rm(join(drives[0]!, 'part.1'))
  const degraded = await read()
  t.equal(Buffer.compare(degraded.bytes, data), 0, 'read back exactly with a lost and a bad shard')
  t.same(
    degraded.errors.map(([s, c]) => [s, c]),
    [
      [0, 'ENOENT'],
      [1, 'CHECKSUM_MISMATCH'],
    ],
    'both failures are reported, with their causes',
  )

  // Lose one more: now only k - 1 good shards remain for block 3.
  await rm(join(drives[4]!, 'part.1'))
  await rm(join(drives[5]!, 'part.1'))
  try {
    await read()
    t.fail('with fewer than k good shards the read must fail')
  } catch (err) {
    t.ok(isCodecError(err, 'TOO_FEW_SHARDS'), String(err))
    t.match((err as Error).message, /ENOENT/, 'the message carries the last cause')
  }
})
