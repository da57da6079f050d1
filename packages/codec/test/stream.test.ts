import t from 'tap'
import {
  type BlockCodec,
  CHUNK_HASH_BYTES,
  CodecPool,
  decodeStream,
  donateChunk,
  donateStripe,
  type EncodedBlock,
  ErasureLayout,
  encodeStream,
  InlineCodec,
  isCodecError,
} from '../src/index.ts'
import { equalBytes, Rng } from './helpers.ts'

const rng = new Rng()
t.comment(`seed ${rng.seed} (set TESSERA_TEST_SEED to replay)`)

/** Yields `data` in randomly sized pieces, as a socket would. */
async function* pieces(data: Uint8Array, max = 100_000): AsyncGenerator<Uint8Array> {
  let at = 0
  while (at < data.length) {
    const n = Math.min(data.length - at, rng.int(1, max))
    yield data.subarray(at, at + n)
    at += n
  }
}

/** Encodes `data` into n in-memory shard files, the way a node writes them. */
async function shardFiles(layout: ErasureLayout, codec: BlockCodec, data: Uint8Array) {
  const files = Array.from({ length: layout.n }, () => [] as Uint8Array[])
  const blocks: number[] = []
  for await (const block of encodeStream(pieces(data), { layout, codec })) {
    blocks.push(block.index)
    block.shards.forEach((s, i) => {
      files[i]!.push(Buffer.from(block.headers[i]!), Buffer.from(s))
    })
    block.release()
  }
  return { files: files.map((f) => Buffer.concat(f)), blocks }
}

interface ReadLog {
  opened: { shard: number; offset: number; length: number }[]
  errors: { shard: number; code: string | undefined }[]
}

async function readBack(
  layout: ErasureLayout,
  codec: BlockCodec,
  files: (Uint8Array | undefined)[],
  size: number,
  range?: { start: number; end: number },
): Promise<{ bytes: Buffer; log: ReadLog }> {
  const log: ReadLog = { opened: [], errors: [] }
  const out: Uint8Array[] = []
  for await (const piece of decodeStream({
    layout,
    codec,
    size,
    ...(range ? { range } : {}),
    open(shard, span) {
      const f = files[shard]
      if (f === undefined) return undefined
      log.opened.push({ shard, ...span })
      return pieces(f.subarray(span.offset, span.offset + span.length), 50_000)
    },
    onShardError(shard, err) {
      log.errors.push({ shard, code: (err as { code?: string }).code })
    },
  })) {
    out.push(Buffer.from(piece))
  }
  return { bytes: Buffer.concat(out), log }
}

for (const kind of ['inline', 'pool'] as const) {
  t.test(`${kind}: round trips of many sizes, with and without lost shards`, async (t) => {
    const codec = kind === 'inline' ? await InlineCodec.create() : new CodecPool({ threads: 2 })
    t.teardown(() => codec.close())
    const layout = new ErasureLayout({ k: 4, m: 2, blockSize: 64 * 1024 })
    for (const size of [0, 1, 3, 4, 5, 64 * 1024 - 1, 64 * 1024, 64 * 1024 + 1, 300_001]) {
      const data = rng.bytes(size)
      const { files, blocks } = await shardFiles(layout, codec, data)
      t.equal(blocks.length, layout.blockCount(size), `size ${size}: block count`)
      t.ok(
        files.every((f) => f.length === layout.shardFileBytes(size)),
        `size ${size}: every shard file has the size the layout says`,
      )
      const whole = await readBack(layout, codec, files, size)
      t.ok(equalBytes(whole.bytes, data), `size ${size}: read back exactly`)
      t.ok(
        whole.log.opened.every((o) => o.shard < layout.k),
        `size ${size}: only data shards are read when all are there`,
      )
      const lost: (Uint8Array | undefined)[] = [...files]
      for (const i of rng.pick(layout.n, layout.m)) lost[i] = undefined
      const degraded = await readBack(layout, codec, lost, size)
      t.ok(equalBytes(degraded.bytes, data), `size ${size}: read back with two shards lost`)
    }
  })
}

t.test('a byte range reads only the blocks it covers', async (t) => {
  const codec = await InlineCodec.create()
  const layout = new ErasureLayout({ k: 3, m: 2, blockSize: 3000 })
  const size = 10 * 3000 + 17
  const data = rng.bytes(size)
  const { files } = await shardFiles(layout, codec, data)
  for (const [start, end] of [
    [0, 1],
    [2999, 3001],
    [6000, 9000],
    [12345, 23456],
    [size - 5, size],
    [0, size],
  ] as const) {
    const { bytes, log } = await readBack(layout, codec, files, size, { start, end })
    t.ok(equalBytes(bytes, data.subarray(start, end)), `[${start}, ${end}) exact`)
    const first = Math.floor(start / 3000)
    const last = Math.floor((end - 1) / 3000)
    const stride = CHUNK_HASH_BYTES + 1000
    t.same(
      log.opened.map((o) => o.offset),
      [0, 1, 2].map(() => first * stride),
      `[${start}, ${end}) opens each data shard at block ${first}`,
    )
    t.ok(
      log.opened.every((o) => o.offset + o.length <= (last + 1) * stride),
      `[${start}, ${end}) reads nothing past block ${last}`,
    )
  }
  await t.rejects(
    readBack(layout, codec, files, size, { start: 5, end: size + 1 }),
    { code: 'INVALID_RANGE' },
    'a range past the end is refused',
  )
})

t.test('a flipped byte is found, named by shard and block, and a spare takes over', async (t) => {
  const codec = new CodecPool({ threads: 2 })
  t.teardown(() => codec.close())
  const layout = new ErasureLayout({ k: 4, m: 2, blockSize: 4096 })
  const size = 5 * 4096 + 100
  const data = rng.bytes(size)
  const { files } = await shardFiles(layout, codec, data)
  const stride = CHUNK_HASH_BYTES + 1024
  const bad = [...files]
  const flipped = Buffer.from(files[2]!)
  flipped[3 * stride + CHUNK_HASH_BYTES + 10]! ^= 0x40
  bad[2] = flipped
  const { bytes, log } = await readBack(layout, codec, bad, size)
  t.ok(equalBytes(bytes, data), 'the data is still read exactly')
  t.same(log.errors, [{ shard: 2, code: 'CHECKSUM_MISMATCH' }], 'the bad shard is reported')
  t.ok(
    log.opened.some((o) => o.shard >= layout.k),
    'a parity shard was opened to replace it',
  )

  // With no spare left, the typed error names the shard and the block.
  const noSpare: (Uint8Array | undefined)[] = [files[0], files[1], flipped, files[3]]
  while (noSpare.length < layout.n) noSpare.push(undefined)
  try {
    await readBack(layout, codec, noSpare, size)
    t.fail('a corrupt chunk with no spare must fail')
  } catch (err) {
    t.ok(isCodecError(err, 'CHECKSUM_MISMATCH'), `no spare: ${(err as Error).message}`)
    t.match(err, { shard: 2, block: 3 }, 'the error names shard 2, block 3')
  }
})

t.test('a checksum mismatch is a typed error naming shard and block', async (t) => {
  const codec = await InlineCodec.create()
  const layout = new ErasureLayout({ k: 2, m: 1, blockSize: 1024 })
  const data = rng.bytes(3000)
  const { files } = await shardFiles(layout, codec, data)
  const stride = CHUNK_HASH_BYTES + 512
  const flipped = Buffer.from(files[1]!)
  flipped[2 * stride + CHUNK_HASH_BYTES]! ^= 1
  const { log } = await readBack(layout, codec, [files[0], flipped, files[2]], 3000)
  t.same(log.errors, [{ shard: 1, code: 'CHECKSUM_MISMATCH' }])
  const direct = await codec.decode({
    k: 2,
    m: 1,
    block: 2,
    length: 3000 - 2048,
    chunks: [
      files[0]!.buffer.slice(
        files[0]!.byteOffset + 2 * stride,
        files[0]!.byteOffset + files[0]!.length,
      ) as ArrayBuffer,
      flipped.buffer.slice(
        flipped.byteOffset + 2 * stride,
        flipped.byteOffset + flipped.length,
      ) as ArrayBuffer,
      null,
    ],
  })
  t.match(direct, { ok: false, shard: 1, block: 2 }, 'decode names shard 1, block 2')
})

t.test('a truncated shard is replaced, and reported with its code', async (t) => {
  const codec = await InlineCodec.create()
  const layout = new ErasureLayout({ k: 2, m: 2, blockSize: 1000 })
  const data = rng.bytes(4500)
  const { files } = await shardFiles(layout, codec, data)
  const cut = [...files]
  cut[0] = files[0]!.subarray(0, files[0]!.length - 300)
  const { bytes, log } = await readBack(layout, codec, cut, 4500)
  t.ok(equalBytes(bytes, data))
  t.same(log.errors, [{ shard: 0, code: 'TRUNCATED_SHARD' }])
  await t.rejects(
    readBack(layout, codec, [cut[0], files[1], undefined, undefined], 4500),
    { code: 'TRUNCATED_SHARD', shard: 0 },
    'with no spare the truncation itself is the error',
  )
})

t.test(
  'a shard that stops sending is given up on after stallMs, and parity takes over',
  async (t) => {
    const codec = await InlineCodec.create()
    const layout = new ErasureLayout({ k: 2, m: 2, blockSize: 1000 })
    const data = rng.bytes(4500)
    const { files } = await shardFiles(layout, codec, data)
    const stride = CHUNK_HASH_BYTES + layout.fullChunkBytes
    let aborted: unknown
    const read = (stallMs?: number) => {
      const errors: { shard: number; code: string | undefined }[] = []
      const out: Uint8Array[] = []
      const done = (async () => {
        for await (const piece of decodeStream({
          layout,
          codec,
          size: 4500,
          ...(stallMs !== undefined ? { stallMs } : {}),
          open(shard, span, { signal }) {
            const f = files[shard]!.subarray(span.offset, span.offset + span.length)
            if (shard !== 0) return pieces(f, 50_000)
            // A drive that hangs after its first block: nothing more, ever, until cancelled.
            return (async function* () {
              yield f.subarray(0, stride)
              await new Promise((_, reject) => {
                signal.addEventListener('abort', () => {
                  aborted = signal.reason
                  reject(new Error('cancelled'))
                })
              })
            })()
          },
          onShardError(shard, err) {
            errors.push({ shard, code: (err as { code?: string }).code })
          },
        })) {
          out.push(Buffer.from(piece))
        }
        return { bytes: Buffer.concat(out), errors }
      })()
      return done
    }
    const { bytes, errors } = await read(200)
    t.ok(equalBytes(bytes, data), 'read back exactly, from parity past the first block')
    t.same(errors, [{ shard: 0, code: 'SHARD_STALLED' }], 'the stalled shard is reported')
    t.match(
      aborted,
      { code: 'SHARD_STALLED', shard: 0, block: 1 },
      "and its source's signal aborted",
    )
    // Without stallMs the read waits on the source: still waiting well past that.
    const waiting = read()
    const first = await Promise.race([
      waiting.then(() => 'ended'),
      new Promise((r) => setTimeout(() => r('waiting'), 600)),
    ])
    t.equal(first, 'waiting', 'with no stallMs a silent source is waited on')
  },
)

t.test('encoding keeps at most inFlight blocks out and reuses released stripes', async (t) => {
  const codec = await InlineCodec.create()
  const layout = new ErasureLayout({ k: 2, m: 1, blockSize: 1000 })
  let pulled = 0
  async function* counted(): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < 20; i++) {
      pulled++
      yield new Uint8Array(1000)
    }
  }
  const stripes = new Set<ArrayBufferLike>()
  const seen: EncodedBlock[] = []
  for await (const block of encodeStream(counted(), { layout, codec, inFlight: 2 })) {
    t.ok(pulled <= block.index + 3, `block ${block.index}: source read only ${pulled} pieces ahead`)
    stripes.add(block.shards[0]!.buffer)
    seen.push(block)
    block.release()
  }
  t.equal(seen.length, 20)
  t.ok(stripes.size <= 3, `${stripes.size} stripe buffers served 20 blocks`)
})

t.test('whole stripe-sized source buffers are taken over without a copy', async (t) => {
  const codec = await InlineCodec.create()
  // blockSize not a multiple of k: stripes are a little larger than a block.
  const layout = new ErasureLayout({ k: 3, m: 2, blockSize: 1000 })
  const data = rng.bytes(3 * 1000 + 417)
  const mixed = async function* (): AsyncGenerator<Uint8Array> {
    for (let at = 0; at < data.length; at += 1000) {
      const n = Math.min(1000, data.length - at)
      if (at === 1000) {
        yield data.subarray(at, at + n) // a plain view: copied
        continue
      }
      const buffer = new ArrayBuffer(layout.stripeBytes)
      const stripe = new Uint8Array(buffer, 0, n)
      stripe.set(data.subarray(at, at + n))
      donateStripe(buffer)
      donatedSeen.push(buffer)
      yield stripe
    }
  }
  const sources: ArrayBufferLike[] = []
  const donatedSeen: ArrayBuffer[] = []
  const viaStripes: Uint8Array[][] = Array.from({ length: layout.n }, () => [])
  for await (const block of encodeStream(mixed(), { layout, codec })) {
    sources.push(block.shards[0]!.buffer)
    for (const [i, s] of block.shards.entries()) {
      viaStripes[i]!.push(Buffer.from(block.headers[i]!), Buffer.from(s))
    }
    block.release()
  }
  const reference = await shardFiles(layout, codec, data)
  for (const [i, f] of viaStripes.entries()) {
    t.ok(equalBytes(Buffer.concat(f), reference.files[i]!), `shard ${i} same as when copied`)
  }
  t.equal(sources.length, 4)
  t.equal(new Set(sources).size, 4, 'every block has its own stripe')
  t.equal(donatedSeen.length, 3, 'three donated buffers')
  for (const b of donatedSeen)
    t.ok(sources.includes(b), 'a donated buffer became a stripe as it was')
})

t.test('donated framed chunks go to the codec uncopied, others are copied', async (t) => {
  const pool = new CodecPool({ threads: 1 })
  t.teardown(() => pool.close())
  const layout = new ErasureLayout({ k: 2, m: 1, blockSize: 4096 })
  const data = rng.bytes(3 * 4096 + 100)
  const { files } = await shardFiles(layout, pool, data)
  const frame = (b: number) =>
    CHUNK_HASH_BYTES + layout.chunkBytes(layout.blockLength(data.length, b))
  const given: { shard: number; buffer: ArrayBuffer; donated: boolean }[] = []
  // Each framed chunk in a buffer of its own behind a 5-byte header, as an RPC body frame's
  // plaintext; shard 0 donates its chunks, shard 1 does not.
  const framedChunks = async function* (file: Uint8Array, shard: number) {
    let at = 0
    for (let b = 0; at < file.length; b++) {
      const n = frame(b)
      const buffer = new ArrayBuffer(5 + n)
      const chunk = new Uint8Array(buffer, 5, n)
      chunk.set(file.subarray(at, at + n))
      at += n
      if (shard === 0) donateChunk(chunk)
      given.push({ shard, buffer, donated: shard === 0 })
      yield chunk
    }
  }
  const out: Uint8Array[] = []
  for await (const piece of decodeStream({
    layout,
    codec: pool,
    size: data.length,
    open: (shard) => (shard < 2 ? framedChunks(files[shard]!, shard) : undefined),
  })) {
    out.push(Buffer.from(piece))
  }
  t.ok(equalBytes(Buffer.concat(out), data), 'the object reads back')
  t.equal(given.length, 8, 'four blocks from each of two shards')
  for (const g of given) {
    if (g.donated) {
      t.equal(
        g.buffer.byteLength,
        0,
        `shard ${g.shard}: the donated buffer itself went to the worker`,
      )
    } else {
      t.ok(g.buffer.byteLength > 5, `shard ${g.shard}: a chunk not donated stays with its source`)
    }
  }
})

t.test('decoding reads one block ahead of its consumer, no more', async (t) => {
  const codec = await InlineCodec.create()
  const layout = new ErasureLayout({ k: 2, m: 1, blockSize: 1024 })
  const data = rng.bytes(6 * 1024)
  const { files } = await shardFiles(layout, codec, data)
  const frameBytes = CHUNK_HASH_BYTES + 512
  const pulled = [0, 0]
  const source = async function* (file: Uint8Array, shard: number) {
    for (let at = 0; at < file.length; at += frameBytes) {
      pulled[shard]!++
      yield file.subarray(at, at + frameBytes)
    }
  }
  const it = decodeStream({
    layout,
    codec,
    size: data.length,
    open: (shard) => (shard < 2 ? source(files[shard]!, shard) : undefined),
  })[Symbol.asyncIterator]()
  const first = await it.next()
  t.equal(first.done, false)
  // Let the read ahead run as far as it will.
  await new Promise((r) => setTimeout(r, 50))
  t.same(pulled, [2, 2], 'block 0 handed out, block 1 read ahead, block 2 not touched')
  await it.next() // the second half of block 0
  await it.next() // block 1
  await new Promise((r) => setTimeout(r, 50))
  t.same(pulled, [3, 3], 'taking block 1 starts block 2')
  // A consumer that stops while a block is being read ahead: the read settles, sources close.
  await it.return?.(undefined)
  t.same(pulled, [3, 3], 'nothing more is read after the consumer stopped')
})

t.test(
  'sources that verify their chunks skip the codec while the data chunks are there',
  async (t) => {
    const inline = await InlineCodec.create()
    let decodes = 0
    const codec: BlockCodec = {
      encode: (task) => inline.encode(task),
      decode: (task) => {
        decodes++
        return inline.decode(task)
      },
      hash: (chunks) => inline.hash(chunks),
      close: () => inline.close(),
    }
    const layout = new ErasureLayout({ k: 3, m: 2, blockSize: 3000 })
    const data = rng.bytes(5 * 3000 + 1234)
    const { files } = await shardFiles(layout, codec, data)
    const frameAt = (b: number) => b * (CHUNK_HASH_BYTES + layout.fullChunkBytes)
    const read = async (
      open: (
        shard: number,
        span: { offset: number; length: number },
      ) => AsyncIterable<Uint8Array> | undefined,
      range?: { start: number; end: number },
    ) => {
      decodes = 0
      const out: Uint8Array[] = []
      for await (const piece of decodeStream({
        layout,
        codec,
        size: data.length,
        sourcesVerify: true,
        ...(range ? { range } : {}),
        open,
      })) {
        out.push(Buffer.from(piece))
      }
      return Buffer.concat(out)
    }
    const whole = (shard: number, span: { offset: number; length: number }) =>
      pieces(files[shard]!.subarray(span.offset, span.offset + span.length), 700)

    t.ok(equalBytes(await read(whole), data), 'the whole object, short last block included')
    t.equal(decodes, 0, 'no codec task while the data chunks are all there')
    const range = { start: 2999, end: 4 * 3000 + 17 }
    t.ok(
      equalBytes(await read(whole, range), data.subarray(range.start, range.end)),
      'a range across blocks',
    )
    t.equal(decodes, 0, 'no codec task for the range either')

    // Data shard 1 fails at block 2: blocks 0 and 1 come from the data chunks, the rest are
    // rebuilt from parity by the codec.
    const failing = (shard: number, span: { offset: number; length: number }) => {
      if (shard !== 1) return whole(shard, span)
      const file = files[1]!.subarray(span.offset, span.offset + span.length)
      return (async function* () {
        yield file.subarray(0, frameAt(2))
        throw new Error('drive gone')
      })()
    }
    t.ok(equalBytes(await read(failing), data), 'the object, rebuilt where shard 1 failed')
    t.equal(decodes, 4, 'the codec rebuilt blocks 2..5 only')
  },
)

t.test('lent chunks come back once each, only when nothing reads them any more', async (t) => {
  const pool = new CodecPool({ threads: 1 })
  t.teardown(() => pool.close())
  const layout = new ErasureLayout({ k: 3, m: 2, blockSize: 3000 })
  const data = rng.bytes(5 * 3000 + 1234)
  const { files } = await shardFiles(layout, pool, data)
  const frame = (b: number) =>
    CHUNK_HASH_BYTES + layout.chunkBytes(layout.blockLength(data.length, b))

  /** Every chunk the sources gave, and how often each came back. */
  let lent = new Map<Uint8Array, number>()
  let problems: string[] = []
  const recycle = (c: Uint8Array): void => {
    const n = lent.get(c)
    if (n === undefined) problems.push('a chunk that was never lent came back')
    else if (n > 0) problems.push('a chunk came back twice')
    else lent.set(c, 1)
    if (c.buffer.byteLength === 0) problems.push('a lent buffer was handed to a worker')
    // As a pool would: the bytes are someone else's from now on.
    c.fill(0xee)
  }
  /** Each chunk in a buffer of its own behind a 5-byte header (an RPC frame's plaintext). */
  const give = (bytes: Uint8Array): Uint8Array => {
    const c = new Uint8Array(new ArrayBuffer(5 + bytes.length), 5, bytes.length)
    c.set(bytes)
    lent.set(c, 0)
    return c
  }
  // Whole framed chunks (used where they lie), or odd pieces (copied out): both are lent.
  const framed = (file: Uint8Array, from: number, failAt?: number) =>
    (async function* () {
      let at = 0
      for (let b = from; at < file.length; b++) {
        if (b === failAt) throw new Error('drive gone')
        yield give(file.subarray(at, at + frame(b)))
        at += frame(b)
      }
    })()
  const odd = (file: Uint8Array) =>
    (async function* () {
      for (let at = 0; at < file.length; ) {
        const n = Math.min(file.length - at, rng.int(1, 2500))
        yield give(file.subarray(at, at + n))
        at += n
      }
    })()

  const read = async (
    name: string,
    open: (
      shard: number,
      span: { offset: number; length: number },
    ) => AsyncIterable<Uint8Array> | undefined,
    opts: { range?: { start: number; end: number }; stopAfter?: number } = {},
  ) => {
    lent = new Map()
    problems = []
    const out: Uint8Array[] = []
    let pieces = 0
    for await (const piece of decodeStream({
      layout,
      codec: pool,
      size: data.length,
      sourcesVerify: true,
      recycle,
      ...(opts.range ? { range: opts.range } : {}),
      open: (shard, span) => open(shard, span),
    })) {
      // A consumer that takes its time: the read ahead runs meanwhile, and must not give back
      // the chunks behind this piece.
      await new Promise((r) => setImmediate(r))
      out.push(Buffer.from(piece))
      if (++pieces === opts.stopAfter) break
    }
    t.same(problems, [], `${name}: no chunk came back twice, unlent or to a worker`)
    t.ok(
      [...lent.values()].every((n) => n === 1),
      `${name}: all ${lent.size} chunks the sources gave came back`,
    )
    return Buffer.concat(out)
  }
  const span = (f: Uint8Array, s: { offset: number; length: number }) =>
    f.subarray(s.offset, s.offset + s.length)
  const firstBlock = (s: { offset: number }) =>
    s.offset / (CHUNK_HASH_BYTES + layout.fullChunkBytes)

  t.ok(
    equalBytes(await read('whole frames', (s, sp) => framed(span(files[s]!, sp), 0)), data),
    'whole frames: the object reads back intact',
  )
  t.ok(
    equalBytes(await read('odd pieces', (s, sp) => odd(span(files[s]!, sp))), data),
    'odd pieces: the object reads back intact',
  )
  const range = { start: 2999, end: 4 * 3000 + 17 }
  t.ok(
    equalBytes(
      await read('a range', (s, sp) => framed(span(files[s]!, sp), firstBlock(sp)), { range }),
      data.subarray(range.start, range.end),
    ),
    'a range: the bytes read back intact',
  )
  // Data shard 1 fails at block 2: the codec rebuilds the rest from parity, on copies.
  t.ok(
    equalBytes(
      await read('a failed shard', (s, sp) =>
        framed(span(files[s]!, sp), firstBlock(sp), s === 1 ? 2 : undefined),
      ),
      data,
    ),
    'a failed shard: the object is rebuilt intact',
  )
  const head = await read('a consumer that stops', (s, sp) => framed(span(files[s]!, sp), 0), {
    stopAfter: 4,
  })
  t.ok(equalBytes(head, data.subarray(0, head.length)), 'a consumer that stops: what it got')
  // Data shard 1 fails at block 2 and no parity can be opened: the read fails, and the chunks
  // of shards 0 and 2 that arrived for block 2 (and the read ahead) come back all the same.
  await t.rejects(
    read('a failed read', (s, sp) =>
      s < 3 ? framed(span(files[s]!, sp), 0, s === 1 ? 2 : undefined) : undefined,
    ),
    { code: 'TOO_FEW_SHARDS' },
    'a failed read fails',
  )
  t.same(problems, [], 'a failed read: no chunk came back twice, unlent or to a worker')
  t.ok(
    [...lent.values()].every((n) => n === 1),
    `a failed read: all ${lent.size} chunks the sources gave came back`,
  )
})
