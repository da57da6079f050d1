/* Design notes
 *
 * encodeStream: copies the incoming byte stream into whole-ArrayBuffer stripes (the one copy
 * the budget allows between socket and disk), hands each full stripe to the codec (a worker,
 * by transfer) and yields blocks in order. A source that already delivers whole stripes (a
 * buffer of exactly layout.stripeBytes given up with donateStripe, starting at a block
 * boundary) has them taken over without a copy. At most `inFlight` blocks are being encoded or
 * waiting for the consumer, and the source is not read while that many are out, so a slow
 * consumer (a slow drive) slows the reading of the source: memory stays bounded by
 * inFlight · (stripe + parity).
 *
 * decodeStream: reads framed chunks [xxh64][chunk] block by block from k shard sources
 * (data shards first: with them no arithmetic is needed), verifies every chunk, rebuilds
 * missing data chunks from parity, and yields the requested bytes as views of the chunks
 * (no concatenation). Sources that verify their own chunks (sourcesVerify: a node's ReadShard,
 * checked on the node and authenticated by the channel) skip the codec when the k data chunks
 * are there, so a healthy read costs no worker task at all. A donated chunk (donateChunk)
 * that is exactly one framed chunk goes to the codec uncopied; others are copied into a
 * buffer of their own. One block is read ahead while the consumer takes the current one. A
 * source that fails (stream error, short read, checksum mismatch, or with `stallMs` nothing
 * for that long while its chunk is awaited: a hung disk behind a live node) is reported
 * through onShardError, its `open` signal is aborted, and it is replaced by a spare source
 * when one was given; a spare is opened lazily and skips the blocks already done. Only the blocks covering the range are read: callers
 * open each shard at layout.shardSpan(size, first, last).
 *
 * Lent chunks (init.recycle): the sources' chunks belong to a buffer pool and must be given
 * back. A chunk that is exactly one framed chunk is used where it is, like a donated one, but
 * never handed to a worker (a transfer would take the buffer from the pool): the rare codec
 * path copies it first. Every chunk goes back through recycle exactly once, as soon as nothing
 * needs its bytes: a copied-out chunk at once, the chunks behind a block's views when the
 * consumer asks for the piece after that block's last one. So a consumer of a lending read
 * must be done with each piece when it asks for the next (an HTTP response that writes a
 * piece before it pulls another is). A read that fails gives back what it holds too.
 */
import type { BlockCodec } from './block-codec.ts'
import { CodecError, isCodecError } from './errors.ts'
import { type ByteSpan, CHUNK_HASH_BYTES, type ErasureLayout } from './layout.ts'

const donated = new WeakSet<ArrayBuffer>()

/**
 * What readers of shards over the network give decodeStream as `stallMs`: far beyond the time
 * a healthy drive takes to read a chunk, and beyond the 5 s after which a silent peer's channel
 * is declared dead (that failure comes first); a drive that hangs behind a live node does not
 * end its stream at all.
 */
export const SHARD_STALL_MS = 10_000

/**
 * Gives a buffer to encodeStream: a source chunk that is a view from offset 0 of a donated
 * buffer of exactly the layout's stripeBytes, arriving at a block boundary, becomes a stripe
 * without being copied (and may be moved to a worker). The donor must not touch it again.
 */
export function donateStripe(buffer: ArrayBuffer): void {
  donated.add(buffer)
}

const donatedChunks = new WeakSet<ArrayBuffer>()

/**
 * Gives up the buffer behind a shard stream's chunk: when the chunk is exactly one framed
 * chunk, decodeStream hands it to the codec as it is (a worker gets the whole buffer by
 * transfer) instead of copying it. For buffers of one's own, such as an RPC body frame's
 * plaintext; the donor must not touch the buffer again.
 */
export function donateChunk(chunk: Uint8Array): void {
  if (chunk.buffer instanceof ArrayBuffer) donatedChunks.add(chunk.buffer)
}

/** Blocks encoded or decoded ahead of the consumer, by default. */
export const DEFAULT_IN_FLIGHT_BLOCKS = 2

export interface EncodedBlock {
  index: number
  /** Object bytes in this block. */
  length: number
  /** n shard chunks, data first: views of the stripe and parity buffers. */
  shards: Uint8Array[]
  /** n xxh64 headers, 8 little-endian bytes each: shard file i gets [headers[i]][shards[i]]. */
  headers: Uint8Array[]
  /** Gives the stripe back to the encoder's pool once the shards are written. Optional. */
  release(): void
}

export interface EncodeStreamInit {
  layout: ErasureLayout
  codec: BlockCodec
  inFlight?: number
}

/** Splits a byte stream into erasure-coded blocks; see the design notes above. */
export async function* encodeStream(
  source: AsyncIterable<Uint8Array>,
  init: EncodeStreamInit,
): AsyncGenerator<EncodedBlock> {
  const { layout, codec } = init
  const inFlight = Math.max(1, init.inFlight ?? DEFAULT_IN_FLIGHT_BLOCKS)
  // Released stripe and parity buffers, reused: large fresh ArrayBuffers are slow to make.
  const free: ArrayBuffer[] = []
  const freeParity: ArrayBuffer[] = []
  const take = (): ArrayBuffer => free.pop() ?? new ArrayBuffer(layout.stripeBytes)
  const pending: Promise<EncodedBlock>[] = []
  let index = 0

  const dispatch = (stripe: ArrayBuffer, length: number): void => {
    const block = index++
    pending.push(
      codec
        .encode({ k: layout.k, m: layout.m, stripe, length, parity: freeParity.pop() })
        .then((r) => {
          const cb = r.chunkBytes
          const shards: Uint8Array[] = []
          for (let i = 0; i < layout.k; i++) shards.push(new Uint8Array(r.stripe, i * cb, cb))
          for (let j = 0; j < layout.m; j++) shards.push(new Uint8Array(r.parity, j * cb, cb))
          const headers = Array.from(
            { length: layout.n },
            (_, i) => new Uint8Array(r.hashes, i * CHUNK_HASH_BYTES, CHUNK_HASH_BYTES),
          )
          let released = false
          return {
            index: block,
            length,
            shards,
            headers,
            release() {
              if (released) return
              released = true
              if (free.length < inFlight) free.push(r.stripe)
              if (freeParity.length < inFlight) freeParity.push(r.parity)
            },
          }
        }),
    )
  }

  let stripe: ArrayBuffer | undefined
  let view = new Uint8Array(0)
  let filled = 0
  try {
    for await (const chunk of source) {
      // A whole stripe-sized buffer arriving at a block boundary becomes the stripe itself:
      // the source already paid the one copy the budget allows (see the design notes).
      if (
        filled === 0 &&
        chunk.byteOffset === 0 &&
        chunk.buffer instanceof ArrayBuffer &&
        chunk.buffer.byteLength === layout.stripeBytes &&
        chunk.length > 0 &&
        chunk.length <= layout.blockSize &&
        donated.delete(chunk.buffer)
      ) {
        if (chunk.length === layout.blockSize) {
          dispatch(chunk.buffer, chunk.length)
          while (pending.length >= inFlight) yield await pending.shift()!
        } else {
          stripe = chunk.buffer
          view = new Uint8Array(stripe)
          filled = chunk.length
        }
        continue
      }
      let at = 0
      while (at < chunk.length) {
        if (stripe === undefined) {
          stripe = take()
          view = new Uint8Array(stripe)
        }
        const n = Math.min(chunk.length - at, layout.blockSize - filled)
        view.set(chunk.subarray(at, at + n), filled)
        filled += n
        at += n
        if (filled === layout.blockSize) {
          dispatch(stripe, filled)
          stripe = undefined
          filled = 0
          while (pending.length >= inFlight) yield await pending.shift()!
        }
      }
    }
    if (filled > 0 && stripe !== undefined) dispatch(stripe, filled)
    while (pending.length > 0) yield await pending.shift()!
  } finally {
    // On early exit, let the in-flight work settle so no rejection goes unhandled.
    await Promise.allSettled(pending)
  }
}

/** One shard file's bytes, starting at the first block being read (see {@link donateChunk}). */
export type ShardStream = AsyncIterable<Uint8Array>

export interface DecodeStreamInit {
  layout: ErasureLayout
  codec: BlockCodec
  /** Object size in bytes. */
  size: number
  /** Bytes [start, end) to produce; default the whole object. */
  range?: { start: number; end: number }
  /**
   * Shard sources by index. Called once per shard actually read, with the span of its file to
   * open; data shards are opened first, parity only to replace a missing or failed one.
   * Return undefined for a shard that is not available. `cancel.signal` is aborted when the
   * shard fails (or stalls): the source should stop then (cancel its call). The signal is made
   * when first read, so a source that has nothing to cancel (bytes in memory) costs none.
   */
  open(shard: number, span: ByteSpan, cancel: ShardCancel): ShardStream | undefined
  /** Told of every shard that failed, and why (for healing). The read continues if it can. */
  onShardError?: (shard: number, err: Error) => void
  /**
   * A shard whose source yields nothing for this long while its next chunk is awaited fails
   * (SHARD_STALLED) and is replaced, as for any failure. Default: no limit.
   */
  stallMs?: number
  /**
   * The sources check every chunk's xxh64 before they yield it, and deliver it authenticated
   * (a storage node's ReadShard over the secure channel). Then a block whose k data chunks
   * all arrived is yielded as views of those chunks, without a codec task: with the data
   * shards there is no arithmetic to do and nothing left to verify. Parity reconstruction
   * still goes through the codec, which verifies again.
   */
  sourcesVerify?: boolean
  /** The sources' chunks are lent: each is given back here when done with (see the notes). */
  recycle?: (chunk: Uint8Array) => void
}

/**
 * Reads exactly-sized frames from a byte stream: a chunk that is exactly one frame, of a
 * donated buffer ({@link donateChunk}) or lent (with `recycle`), is taken as it is; anything
 * else is copied into a new ArrayBuffer (and, when lent, given back once copied out).
 */
class FrameReader {
  #it: AsyncIterator<Uint8Array>
  #rest: Uint8Array = new Uint8Array(0)
  /** The lent chunk #rest is a view of, until it is copied out. */
  #restSource: Uint8Array | undefined
  readonly #recycle: ((chunk: Uint8Array) => void) | undefined

  constructor(stream: ShardStream, recycle?: (chunk: Uint8Array) => void) {
    this.#it = stream[Symbol.asyncIterator]()
    this.#recycle = recycle
  }

  /** The next `bytes` bytes, or, if the stream ends first, how many it had. */
  async read(bytes: number): Promise<ArrayBuffer | Uint8Array | number> {
    if (this.#rest.length === 0) {
      const next = await this.#it.next()
      if (next.done) return 0
      const c = next.value
      if (
        c.length === bytes &&
        c.buffer instanceof ArrayBuffer &&
        (this.#recycle !== undefined || donatedChunks.delete(c.buffer))
      ) {
        return c
      }
      this.#take(c)
    }
    const out = new ArrayBuffer(bytes)
    const view = new Uint8Array(out)
    let filled = 0
    while (filled < bytes) {
      if (this.#rest.length === 0) {
        const next = await this.#it.next()
        if (next.done) return filled
        this.#take(next.value)
        continue
      }
      const n = Math.min(bytes - filled, this.#rest.length)
      view.set(this.#rest.subarray(0, n), filled)
      this.#rest = this.#rest.subarray(n)
      filled += n
      if (this.#rest.length === 0) this.#giveBack()
    }
    return out
  }

  #take(chunk: Uint8Array): void {
    this.#giveBack()
    this.#rest = chunk
    if (this.#recycle) this.#restSource = chunk
  }

  #giveBack(): void {
    const c = this.#restSource
    this.#restSource = undefined
    if (c !== undefined) this.#recycle?.(c)
  }

  async close(): Promise<void> {
    this.#rest = new Uint8Array(0)
    this.#giveBack()
    await this.#it.return?.()
  }
}

/** `bytes` in an ArrayBuffer of their own (a Buffer's slice() would be a view). */
function copyOf(bytes: Uint8Array): ArrayBuffer {
  const out = new ArrayBuffer(bytes.length)
  new Uint8Array(out).set(bytes)
  return out
}

/** A shard source's cancellation (see DecodeStreamInit.open). */
export interface ShardCancel {
  readonly signal: AbortSignal
}

/** A ShardCancel whose AbortController is made on first use: a small GET opens k of them. */
class LazyCancel implements ShardCancel {
  #abort: AbortController | undefined
  #aborted = false
  #reason: unknown

  get signal(): AbortSignal {
    if (this.#abort === undefined) {
      this.#abort = new AbortController()
      if (this.#aborted) this.#abort.abort(this.#reason)
    }
    return this.#abort.signal
  }

  abort(reason: unknown): void {
    if (this.#aborted) return
    this.#aborted = true
    this.#reason = reason
    this.#abort?.abort(reason)
  }
}

/** Reassembles the bytes of an erasure-coded object (or a range of it); see the notes above. */
export async function* decodeStream(init: DecodeStreamInit): AsyncGenerator<Uint8Array> {
  const { layout, codec, size, recycle } = init
  const range = init.range ?? { start: 0, end: size }
  if (range.start === range.end && range.start <= size && range.start >= 0) return
  const { first, last } = layout.blocksFor(size, range.start, range.end)
  const span = layout.shardSpan(size, first, last)
  const readers = new Map<number, { reader: FrameReader; at: number; abort: LazyCancel }>()
  const failed = new Set<number>()
  // Thrown when too few shards are left: the failure that left us short says more than a count.
  let lastFailure: Error | undefined

  const fail = (shard: number, err: Error): void => {
    failed.add(shard)
    lastFailure = err
    const r = readers.get(shard)
    readers.delete(shard)
    // A stalled source's pending read ends only when its call is cancelled.
    r?.abort.abort(err)
    void r?.reader.close().catch(() => {})
    init.onShardError?.(shard, err)
  }

  /** Opens the next usable shard not yet in use; false when none is left. */
  const openSpare = (): boolean => {
    for (let s = 0; s < layout.n; s++) {
      if (readers.has(s) || failed.has(s)) continue
      const abort = new LazyCancel()
      const stream = init.open(s, span, abort)
      if (stream === undefined) {
        failed.add(s)
        continue
      }
      readers.set(s, { reader: new FrameReader(stream, recycle), at: first, abort })
      return true
    }
    return false
  }

  /** The framed chunk of `block` from `shard`, skipping the blocks a late spare missed. */
  const chunkOf = async (shard: number, block: number): Promise<ArrayBuffer | Uint8Array> => {
    const r = readers.get(shard)!
    for (;;) {
      const at = r.at
      const want = CHUNK_HASH_BYTES + layout.chunkBytes(layout.blockLength(size, at))
      const frame = await r.reader.read(want)
      if (typeof frame === 'number') {
        throw CodecError.TRUNCATED_SHARD(
          shard,
          at,
          `shard ends ${frame} bytes into this block's ${want}`,
        )
      }
      r.at++
      if (at === block) return frame
      if (recycle && frame instanceof Uint8Array) recycle(frame)
    }
  }

  /** chunkOf, failing with SHARD_STALLED when the source sends nothing for stallMs. */
  const watched = (shard: number, block: number): Promise<ArrayBuffer | Uint8Array> => {
    const chunk = chunkOf(shard, block)
    const ms = init.stallMs
    if (ms === undefined) return chunk
    return new Promise((resolve, reject) => {
      let late = false
      const timer = setTimeout(() => {
        late = true
        reject(CodecError.SHARD_STALLED(shard, block, ms))
      }, ms)
      chunk.then(
        (c) => {
          clearTimeout(timer)
          // Arrived after all, once given up on: a lent chunk still goes back.
          if (!late) resolve(c)
          else if (recycle && c instanceof Uint8Array) recycle(c)
        },
        (err: unknown) => {
          clearTimeout(timer)
          reject(err)
        },
      )
    })
  }

  /** The lent chunks among a block's (none unless recycling): ArrayBuffers are our copies. */
  const lentOf = (chunks: readonly (ArrayBuffer | Uint8Array | null)[]): Uint8Array[] =>
    recycle ? chunks.filter((c): c is Uint8Array => c instanceof Uint8Array) : []
  const giveBack = (chunks: readonly Uint8Array[]): void => {
    if (recycle) for (const c of chunks) recycle(c)
  }

  /** Fills `chunks` with block `block` from k working shards, opening spares as shards fail. */
  const gather = async (
    block: number,
    chunks: (ArrayBuffer | Uint8Array | null)[],
  ): Promise<void> => {
    for (;;) {
      while (readers.size < layout.k && openSpare()) {}
      const todo = [...readers.keys()].filter((s) => chunks[s] === null)
      const settled = await Promise.allSettled(todo.map((s) => watched(s, block)))
      settled.forEach((r, i) => {
        const s = todo[i]!
        if (r.status === 'fulfilled') chunks[s] = r.value
        else fail(s, r.reason instanceof Error ? r.reason : new Error(String(r.reason)))
      })
      const have = chunks.filter((c) => c !== null).length
      if (have >= layout.k) return
      if (todo.length === 0) {
        // A codec failure (checksum, truncation) names shard and block: it is the better error.
        if (isCodecError(lastFailure)) throw lastFailure
        throw CodecError.TOO_FEW_SHARDS(have, layout.k, lastFailure)
      }
    }
  }

  /** A block of `length` bytes as views of its k data chunks, given as [buffer, byte offset]. */
  const blockViews = (
    data: [ArrayBufferLike, number][],
    chunkBytes: number,
    length: number,
  ): Uint8Array[] => {
    const out: Uint8Array[] = []
    let left = length
    for (const [buf, off] of data) {
      const n = Math.min(left, chunkBytes)
      left -= n
      if (n > 0) out.push(new Uint8Array(buf, off, n))
    }
    return out
  }

  /** The block straight from its k framed data chunks; undefined if one is missing. */
  const fromDataChunks = (
    chunks: (ArrayBuffer | Uint8Array | null)[],
    length: number,
  ): Uint8Array[] | undefined => {
    const data: [ArrayBufferLike, number][] = []
    for (let s = 0; s < layout.k; s++) {
      const c = chunks[s]
      if (c === null || c === undefined) return undefined
      data.push(
        c instanceof Uint8Array
          ? [c.buffer, c.byteOffset + CHUNK_HASH_BYTES]
          : [c, CHUNK_HASH_BYTES],
      )
    }
    return blockViews(data, layout.chunkBytes(length), length)
  }

  /** A block's views, and the lent chunks they are views of (to give back after use). */
  interface ReadBlock {
    views: Uint8Array[]
    lent: Uint8Array[]
  }

  const readBlock = async (block: number): Promise<ReadBlock> => {
    const length = layout.blockLength(size, block)
    let chunks: (ArrayBuffer | Uint8Array | null)[] = new Array(layout.n).fill(null)
    for (;;) {
      try {
        await gather(block, chunks)
      } catch (err) {
        // Too few shards: the chunks that did arrive are of no use now.
        giveBack(lentOf(chunks))
        throw err
      }
      if (init.sourcesVerify) {
        const views = fromDataChunks(chunks, length)
        if (views !== undefined) return { views, lent: lentOf(chunks) }
      }
      if (recycle) {
        // The codec takes its buffers by transfer: lent ones are copied and given back.
        const lent = lentOf(chunks)
        chunks = chunks.map((c) => (c instanceof Uint8Array ? copyOf(c) : c))
        giveBack(lent)
      }
      const r = await codec.decode({ k: layout.k, m: layout.m, block, length, chunks })
      if (r.ok) return { views: blockViews(r.data, r.chunkBytes, length), lent: [] }
      // The chunk buffers were handed over and came back with the answer, in slot order.
      let b = 0
      chunks = chunks.map((c) => (c === null ? null : r.buffers[b++]!))
      chunks[r.shard] = null
      fail(r.shard, CodecError.CHECKSUM_MISMATCH(r.shard, r.block, r.expected, r.actual))
    }
  }

  // One block is read ahead: the next block's chunks arrive and are checked while the consumer
  // takes this one (at most two blocks per read in memory).
  let ahead: Promise<ReadBlock> | undefined
  const readAhead = (block: number): void => {
    ahead = readBlock(block)
    // Awaited below; until then a failure must not count as unhandled.
    ahead.catch(() => {})
  }
  // The lent chunks behind the block the consumer is taking.
  let held: Uint8Array[] = []
  try {
    readAhead(first)
    for (let block = first; block <= last; block++) {
      const { views: data, lent } = await ahead!
      ahead = undefined
      // The consumer asked for the piece after the last block's: it is done with that block.
      giveBack(held)
      held = lent
      if (block < last) readAhead(block + 1)
      const blockStart = block * layout.blockSize
      let pos = blockStart
      for (const piece of data) {
        const lo = Math.max(range.start, pos)
        const hi = Math.min(range.end, pos + piece.length)
        if (hi > lo) yield piece.subarray(lo - pos, hi - pos)
        pos += piece.length
      }
    }
  } finally {
    // Ended, failed or abandoned: the consumer asks for nothing more.
    giveBack(held)
    // A read ahead still running uses the readers: let it settle before they close.
    const late = await ahead?.catch(() => undefined)
    if (late) giveBack(late.lent)
    await Promise.allSettled([...readers.values()].map((r) => r.reader.close()))
  }
}
