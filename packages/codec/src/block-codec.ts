import { availableParallelism } from 'node:os'
import { Piscina } from 'piscina'
import {
  type DecodeResult,
  type DecodeTask,
  type EncodeResult,
  type EncodeTask,
  runDecode,
  runEncode,
  runHash,
} from './block-ops.ts'
import { type ChunkHasher, loadChunkHasher } from './chunk-hash.ts'
import { CodecError, type CodecErrorCode } from './errors.ts'

/**
 * The CPU side of the block streaming API: encode a block (parity + chunk hashes), verify and
 * decode a block, hash chunks. Two implementations with one contract: {@link InlineCodec}
 * runs on the calling thread, {@link CodecPool} on worker threads. Every ArrayBuffer passed in
 * is handed over (transferred, for the pool) and must not be used by the caller afterwards;
 * the results give the buffers back.
 */
export interface BlockCodec {
  encode(task: Omit<EncodeTask, 'op'>): Promise<EncodeResult>
  decode(task: Omit<DecodeTask, 'op'>): Promise<DecodeResult>
  hash(chunks: ArrayBuffer[]): Promise<{ hashes: BigUint64Array; chunks: ArrayBuffer[] }>
  close(): Promise<void>
}

/** Runs codec work on the calling thread; for tests, tools and tiny objects. */
export class InlineCodec implements BlockCodec {
  #h64: ChunkHasher

  private constructor(h64: ChunkHasher) {
    this.#h64 = h64
  }

  static async create(): Promise<InlineCodec> {
    return new InlineCodec(await loadChunkHasher())
  }

  async encode(task: Omit<EncodeTask, 'op'>): Promise<EncodeResult> {
    return runEncode({ op: 'encode', ...task }, this.#h64)
  }

  async decode(task: Omit<DecodeTask, 'op'>): Promise<DecodeResult> {
    return runDecode({ op: 'decode', ...task }, this.#h64)
  }

  async hash(chunks: ArrayBuffer[]): Promise<{ hashes: BigUint64Array; chunks: ArrayBuffer[] }> {
    return { hashes: runHash({ op: 'hash', chunks }, this.#h64), chunks }
  }

  async close(): Promise<void> {}
}

export interface CodecPoolInit {
  /** Worker threads; default: the machine's available parallelism. */
  threads?: number
  /** Tasks queued beyond the threads before run() waits; default: unbounded (callers bound). */
  maxQueue?: number
}

/** What a worker sends back when a task threw: errors lose their class crossing threads. */
export interface WorkerFailure {
  failure: { code: CodecErrorCode | undefined; message: string; shard?: number; block?: number }
}

const WORKER_URL = new URL('./worker.js', import.meta.url)

/**
 * A piscina pool of codec workers. Buffers go to the workers and come back by transfer, so a
 * 1 MiB stripe crosses threads without a copy; the event loop only posts messages.
 */
export class CodecPool implements BlockCodec {
  readonly threads: number
  #pool: Piscina
  #closed = false

  constructor(init: CodecPoolInit = {}) {
    const threads = init.threads ?? availableParallelism()
    if (!Number.isInteger(threads) || threads < 1) {
      throw CodecError.INVALID_PARAMETERS(`threads must be an integer >= 1 (got ${threads})`)
    }
    this.threads = threads
    this.#pool = new Piscina({
      filename: WORKER_URL.href,
      minThreads: threads,
      maxThreads: threads,
      maxQueue: init.maxQueue ?? Number.POSITIVE_INFINITY,
      // Idle workers keep their WASM instances and plan caches warm.
      idleTimeout: Number.POSITIVE_INFINITY,
      // A message round trip costs ~80 µs, a fifth of a 1 MiB encode: with a second task
      // already queued in the worker it never waits for the next one. Tasks are synchronous,
      // so they still run one at a time.
      concurrentTasksPerWorker: 2,
      recordTiming: false,
      // Workers wait for messages in their event loop, not in Atomics.wait: measured no slower.
      atomics: 'disabled',
    })
  }

  /** Fraction of the pool's time spent running tasks since it started (0..1). */
  get utilization(): number {
    return this.#pool.utilization
  }

  async #run<R>(task: object, transfer: ArrayBuffer[]): Promise<R> {
    if (this.#closed) throw CodecError.POOL_CLOSED()
    const out = (await this.#pool.run(task, { transferList: transfer })) as R | WorkerFailure
    if (typeof out === 'object' && out !== null && 'failure' in out) {
      const f = out.failure
      if (f.code === undefined) throw new Error(f.message)
      throw new CodecError(f.code, f.message, { shard: f.shard, block: f.block })
    }
    return out
  }

  encode(task: Omit<EncodeTask, 'op'>): Promise<EncodeResult> {
    const transfer = task.parity ? [task.stripe, task.parity] : [task.stripe]
    return this.#run({ op: 'encode', ...task }, transfer)
  }

  decode(task: Omit<DecodeTask, 'op'>): Promise<DecodeResult> {
    const transfer = task.chunks.filter((c): c is ArrayBuffer => c !== null)
    return this.#run({ op: 'decode', ...task }, transfer)
  }

  async hash(chunks: ArrayBuffer[]): Promise<{ hashes: BigUint64Array; chunks: ArrayBuffer[] }> {
    const r = await this.#run<{ hashes: ArrayBuffer; chunks: ArrayBuffer[] }>(
      { op: 'hash', chunks },
      chunks,
    )
    return { hashes: new BigUint64Array(r.hashes), chunks: r.chunks }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#pool.destroy()
  }
}
