/* Design notes
 *
 * The CPU work of the block streaming API, written once as plain functions over whole
 * ArrayBuffers so that the same code runs inline (tests, small objects) and in the worker
 * pool (servers). Every buffer a task takes or returns is a whole ArrayBuffer the caller owns,
 * so it moves between threads by transfer and is never copied; the functions only make views.
 */
import { type ChunkHasher, hashChunks } from './chunk-hash.ts'
import { CodecError } from './errors.ts'
import { CHUNK_HASH_BYTES } from './layout.ts'
import { ReedSolomon } from './reed-solomon.ts'

export interface EncodeTask {
  op: 'encode'
  k: number
  m: number
  /** Holds the block's `length` data bytes from offset 0; at least k · ceil(length / k) long. */
  stripe: ArrayBuffer
  length: number
  /**
   * A parity buffer to reuse (from an earlier result), used when it holds m chunks: a fresh
   * 512 KiB ArrayBuffer costs about as much as a third of the encode (zeroed pages, faults).
   */
  parity?: ArrayBuffer
}

export interface EncodeResult {
  /** The stripe given, now zero-padded: data chunk i is at i · chunkBytes. */
  stripe: ArrayBuffer
  /** m parity chunks, chunk j at j · chunkBytes. */
  parity: ArrayBuffer
  /** n xxh64 values as 8 little-endian bytes each, data chunks first. */
  hashes: ArrayBuffer
  chunkBytes: number
}

export interface DecodeTask {
  op: 'decode'
  k: number
  m: number
  block: number
  /** Data bytes of this block. */
  length: number
  /**
   * n slots: framed chunk [xxh64][chunk] read from shard i, or null; k or more present. A slot
   * is a whole ArrayBuffer or a view of one; either way the whole buffer is handed over (the
   * pool transfers it), so pass a view only of a buffer nothing else uses.
   */
  chunks: (ArrayBuffer | Uint8Array | null)[]
}

export type DecodeResult =
  | {
      ok: true
      /** k data chunks: [buffer, byte offset] each; the block is their concatenation, cut to length. */
      data: [ArrayBuffer, number][]
      chunkBytes: number
      /**
       * Every buffer of the task, given back (present chunks are referenced by `data`): the
       * slots given, in slot order, as given (buffer or view), then the rebuilt chunks.
       */
      buffers: (ArrayBuffer | Uint8Array)[]
    }
  | {
      ok: false
      shard: number
      block: number
      expected: bigint
      actual: bigint
      /** The slots given, in slot order, as given (buffer or view). */
      buffers: (ArrayBuffer | Uint8Array)[]
    }

export interface HashTask {
  op: 'hash'
  chunks: ArrayBuffer[]
}

export type CodecTask = EncodeTask | DecodeTask | HashTask

/** Several tasks in one message to a worker; answered by an array of results, in order. */
export interface BatchTask {
  op: 'batch'
  tasks: CodecTask[]
}

const codes = new Map<string, ReedSolomon>()

function code(k: number, m: number): ReedSolomon {
  const key = `${k}+${m}`
  let rs = codes.get(key)
  if (rs === undefined) {
    rs = new ReedSolomon({ k, m })
    codes.set(key, rs)
  }
  return rs
}

export function runEncode(task: EncodeTask, h64: ChunkHasher): EncodeResult {
  const rs = code(task.k, task.m)
  const chunkBytes = Math.ceil(task.length / task.k)
  if (task.stripe.byteLength < chunkBytes * task.k) {
    throw CodecError.INVALID_PARAMETERS(
      `stripe holds ${task.stripe.byteLength} bytes, a block of ${task.length} needs ${chunkBytes * task.k}`,
    )
  }
  const stripe = new Uint8Array(task.stripe, 0, chunkBytes * task.k)
  stripe.fill(0, task.length)
  const parity =
    task.parity !== undefined && task.parity.byteLength >= chunkBytes * task.m
      ? task.parity
      : new ArrayBuffer(chunkBytes * task.m)
  const data = Array.from({ length: task.k }, (_, i) =>
    stripe.subarray(i * chunkBytes, (i + 1) * chunkBytes),
  )
  const par = Array.from(
    { length: task.m },
    (_, j) => new Uint8Array(parity, j * chunkBytes, chunkBytes),
  )
  if (chunkBytes > 0) rs.encode(data, par)
  const hashes = hashChunks(h64, [...data, ...par])
  return { stripe: task.stripe, parity, hashes: hashes.buffer as ArrayBuffer, chunkBytes }
}

export function runDecode(task: DecodeTask, h64: ChunkHasher): DecodeResult {
  const rs = code(task.k, task.m)
  const chunkBytes = Math.ceil(task.length / task.k)
  const buffers: (ArrayBuffer | Uint8Array)[] = task.chunks.filter((c) => c !== null)
  const shards: (Uint8Array | undefined)[] = []
  for (const [i, slot] of task.chunks.entries()) {
    if (slot === null) {
      shards.push(undefined)
      continue
    }
    const framed = slot instanceof ArrayBuffer ? new Uint8Array(slot) : slot
    if (framed.byteLength !== CHUNK_HASH_BYTES + chunkBytes) {
      throw CodecError.TRUNCATED_SHARD(
        i,
        task.block,
        `framed chunk is ${framed.byteLength} bytes, expected ${CHUNK_HASH_BYTES + chunkBytes}`,
      )
    }
    const chunk = framed.subarray(CHUNK_HASH_BYTES)
    const expected = new DataView(framed.buffer, framed.byteOffset, 8).getBigUint64(0, true)
    const actual = h64(chunk)
    if (actual !== expected)
      return { ok: false, shard: i, block: task.block, expected, actual, buffers }
    shards.push(chunk)
  }
  const missing: number[] = []
  for (let i = 0; i < task.k; i++) if (shards[i] === undefined) missing.push(i)
  const rebuilt = missing.length > 0 ? rs.rebuild(shards, missing) : []
  const data: [ArrayBuffer, number][] = []
  let r = 0
  for (let i = 0; i < task.k; i++) {
    const s = shards[i]
    if (s !== undefined) data.push([s.buffer as ArrayBuffer, s.byteOffset])
    else {
      const b = rebuilt[r++]!
      buffers.push(b.buffer as ArrayBuffer)
      data.push([b.buffer as ArrayBuffer, 0])
    }
  }
  return { ok: true, data, chunkBytes, buffers }
}

/** The distinct ArrayBuffers behind `items` (buffers and views): what a transfer list holds. */
export function backingBuffers(items: readonly (ArrayBuffer | Uint8Array | null)[]): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>()
  for (const b of items) {
    if (b === null) continue
    out.add(b instanceof ArrayBuffer ? b : (b.buffer as ArrayBuffer))
  }
  return [...out]
}

export function runHash(task: HashTask, h64: ChunkHasher): BigUint64Array {
  return hashChunks(
    h64,
    task.chunks.map((c) => new Uint8Array(c)),
  )
}
