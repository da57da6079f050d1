import { availableParallelism } from 'node:os'
import { Piscina } from 'piscina'
import {
  type BatchTask,
  backingBuffers,
  type CodecTask,
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
  /** Most tasks sent to a worker in one message when tasks are waiting; default 4. */
  maxBatch?: number
}

/** Tasks sent to a worker in one message, at most, when a backlog builds up. */
export const DEFAULT_MAX_BATCH = 4
/** Messages outstanding per worker: one running, one queued so the worker never idles. */
const MESSAGES_PER_WORKER = 2

interface Queued {
  task: CodecTask
  transfer: ArrayBuffer[]
  resolve(value: unknown): void
  reject(err: unknown): void
}

/** What a worker sends back when a task threw: errors lose their class crossing threads. */
export interface WorkerFailure {
  failure: { code: CodecErrorCode | undefined; message: string; shard?: number; block?: number }
}

const WORKER_URL = new URL('./worker.js', import.meta.url)

/**
 * A piscina pool of codec workers. Buffers go to the workers and come back by transfer, so a
 * 1 MiB stripe crosses threads without a copy; the event loop only posts messages.
 *
 * A message costs about 80 µs of round trip and a share of both threads' time, a fifth of a
 * 1 MiB encode. So the pool keeps at most two messages out per worker, and when tasks are
 * waiting beyond that it sends up to `maxBatch` of them in one message: no added latency when
 * the pool is idle, a quarter of the messaging cost when it is saturated.
 */
export class CodecPool implements BlockCodec {
  readonly threads: number
  readonly maxBatch: number
  #pool: Piscina
  #closed = false
  #queue: Queued[] = []
  #outstanding = 0
  #startedAt = performance.now()
  #busyAt = this.#startedAt
  #busyMs = 0

  constructor(init: CodecPoolInit = {}) {
    const threads = init.threads ?? availableParallelism()
    if (!Number.isInteger(threads) || threads < 1) {
      throw CodecError.INVALID_PARAMETERS(`threads must be an integer >= 1 (got ${threads})`)
    }
    const maxBatch = init.maxBatch ?? DEFAULT_MAX_BATCH
    if (!Number.isInteger(maxBatch) || maxBatch < 1) {
      throw CodecError.INVALID_PARAMETERS(`maxBatch must be an integer >= 1 (got ${maxBatch})`)
    }
    this.threads = threads
    this.maxBatch = maxBatch
    this.#pool = new Piscina({
      filename: WORKER_URL.href,
      minThreads: threads,
      maxThreads: threads,
      // Idle workers keep their WASM instances and plan caches warm.
      idleTimeout: Number.POSITIVE_INFINITY,
      // The second message waits in the worker while the first runs (tasks are synchronous,
      // so they still run one at a time): the worker never waits for a round trip.
      concurrentTasksPerWorker: MESSAGES_PER_WORKER,
      recordTiming: false,
      // Workers wait for messages in their event loop, not in Atomics.wait: measured no slower.
      atomics: 'disabled',
    })
  }

  /**
   * Fraction of the workers' time with work since the pool started (0..1): {@link busySeconds}
   * over the elapsed time times the threads. (Piscina's own figure needs recordTiming, which
   * costs a histogram update per message, so the pool keeps this count itself.)
   */
  get utilization(): number {
    const elapsedMs = performance.now() - this.#startedAt
    return elapsedMs > 0 ? (this.busySeconds * 1000) / (elapsedMs * this.threads) : 0
  }

  /**
   * Worker-seconds with work since the pool started: the time each message was out, counting
   * at most one message per worker (a worker runs one task at a time). For rates, take the
   * difference of two readings.
   */
  get busySeconds(): number {
    this.#tally()
    return this.#busyMs / 1000
  }

  /** Tasks waiting in the pool for a worker (not yet sent to one). */
  get queueSize(): number {
    return this.#queue.length
  }

  /** Brings the busy time up to now; called before the messages out change. */
  #tally(): void {
    const now = performance.now()
    this.#busyMs += (now - this.#busyAt) * Math.min(this.#outstanding, this.threads)
    this.#busyAt = now
  }

  #run<R>(task: CodecTask, transfer: ArrayBuffer[]): Promise<R> {
    if (this.#closed) return Promise.reject(CodecError.POOL_CLOSED())
    return new Promise<R>((resolve, reject) => {
      this.#queue.push({ task, transfer, resolve: resolve as (v: unknown) => void, reject })
      this.#pump()
    })
  }

  /** Sends queued tasks while fewer than two messages per worker are out. */
  #pump(): void {
    const slots = this.threads * MESSAGES_PER_WORKER
    while (this.#outstanding < slots && this.#queue.length > 0) {
      // Spread the backlog over the free slots, up to maxBatch tasks a message.
      const free = slots - this.#outstanding
      const size = Math.min(this.maxBatch, Math.ceil(this.#queue.length / free))
      const batch = this.#queue.splice(0, size)
      this.#tally()
      this.#outstanding++
      const message: BatchTask = { op: 'batch', tasks: batch.map((q) => q.task) }
      this.#pool
        .run(message, { transferList: [...new Set(batch.flatMap((q) => q.transfer))] })
        .then(
          (results: unknown[]) => {
            for (const [i, out] of results.entries()) settle(batch[i]!, out)
          },
          (err: unknown) => {
            for (const q of batch) q.reject(err)
          },
        )
        .finally(() => {
          this.#tally()
          this.#outstanding--
          this.#pump()
        })
    }
  }

  encode(task: Omit<EncodeTask, 'op'>): Promise<EncodeResult> {
    const transfer = task.parity ? [task.stripe, task.parity] : [task.stripe]
    return this.#run({ op: 'encode', ...task }, transfer)
  }

  decode(task: Omit<DecodeTask, 'op'>): Promise<DecodeResult> {
    return this.#run({ op: 'decode', ...task }, backingBuffers(task.chunks))
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
    for (const q of this.#queue.splice(0)) q.reject(CodecError.POOL_CLOSED())
    await this.#pool.destroy()
  }
}

function settle(q: Queued, out: unknown): void {
  if (typeof out === 'object' && out !== null && 'failure' in out) {
    const f = (out as WorkerFailure).failure
    if (f.code === undefined) q.reject(new Error(f.message))
    else q.reject(new CodecError(f.code, f.message, { shard: f.shard, block: f.block }))
  } else q.resolve(out)
}
