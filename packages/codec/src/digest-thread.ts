/**
 * Running digests (MD5 for ETags and Content-MD5, SHA-256 for signed payloads, SHA-1) of
 * request bodies, computed on a thread of their own instead of the gateway's event loop.
 *
 * Why: MD5 cannot be split across blocks or threads — each byte waits for the digest of all
 * before it — so the codec pool cannot take it, and on the main thread it was a third of a
 * large PUT's work (node:crypto's MD5 runs at about 0.74 GB/s). A session sends its body's
 * pieces, in order, to one long-lived worker that keeps the hash objects; the digests come
 * back once the body has ended.
 *
 * How the bytes travel: one ring of {@link DIGEST_RING_BYTES} in a SharedArrayBuffer, shared by
 * every session of the thread. `update` copies the piece into the ring and posts a small
 * message (session, byte count); the worker hashes those bytes where they lie and publishes how
 * far it has read (an atomic counter), which frees the space. Nothing is allocated per byte on
 * either side: the first version copied each piece into a fresh ArrayBuffer and transferred
 * it, and at 32 concurrent 64 MiB PUTs those buffers (zeroed, then collected by the worker's GC)
 * took the gateway from 450 to 805 MiB and cost the thread a fifth of its time in GC. Now the
 * thread's memory is the ring, whatever the number of bodies.
 *
 * Backpressure: a piece that does not fit waits, in arrival order behind any piece already
 * waiting, and `update` returns a promise the caller awaits before its next piece; a body then
 * slows down to the thread's pace instead of queueing in memory. The worker is told that the
 * gateway waits through a flag in the shared counters, so it posts a message only then.
 */
import { Worker } from 'node:worker_threads'

/** The digests a thread computes: node:crypto's names. */
export type DigestAlgorithm = 'md5' | 'sha1' | 'sha256'

/** Bytes of the ring shared by a thread's sessions: the most not yet hashed at any time. */
export const DIGEST_RING_BYTES = 8 * 1024 * 1024

/** A piece waiting for room is copied in parts of at least this much (or its rest, or a
 * quarter of a smaller ring). */
const MIN_COPY_BYTES = 256 * 1024

const WORKER_URL = new URL('./digest-worker.js', import.meta.url)

/** Int32 slots of the shared counters. */
export const CONSUMED = 0
export const WAITING = 1

/** What the worker gets at start: the ring and the counters, both shared. */
export interface DigestWorkerData {
  ring: SharedArrayBuffer
  control: SharedArrayBuffer
}

/** Messages to the worker. `update`: the next `bytes` of the ring belong to session `id`. */
export type DigestRequest =
  | { op: 'open'; id: number; algorithms: DigestAlgorithm[] }
  | { op: 'update'; id: number; bytes: number }
  | { op: 'digest'; id: number }
  | { op: 'drop'; id: number }

/** Messages from the worker. `space`: the ring has room again (sent only when asked). */
export type DigestReply =
  | { op: 'space' }
  | { op: 'digest'; id: number; digests: Record<string, Uint8Array> }
  | { op: 'error'; id: number; message: string }

interface SessionState {
  id: number
  /** Resolves when the last piece waiting for room is in the ring. */
  tail: Promise<void> | undefined
  done: { resolve(d: Record<string, Buffer>): void; reject(err: Error): void } | undefined
  failed: Error | undefined
}

/** A piece waiting for room in the ring; `at` bytes of it are in already. */
interface Waiting {
  s: SessionState
  chunk: Uint8Array
  at: number
  resolve(): void
  reject(err: Error): void
}

/** The worker of the moment, with its ring. */
interface Running {
  worker: Worker
  ring: Uint8Array
  control: Int32Array
  /** Bytes copied into the ring since the worker started. */
  written: number
}

/** What a {@link DigestThread} has done and holds, for metrics. */
export interface DigestStats {
  /** Bytes copied into the ring and not yet hashed. */
  backlogBytes: number
  /** Pieces waiting for room in the ring (each pauses its body). */
  waiting: number
  /** Bytes copied into the ring since the DigestThread was made. */
  bytes: number
  /** Updates that had to wait for room since the DigestThread was made. */
  waits: number
}

/** One running digest of one body; see {@link DigestThread.session}. */
export interface DigestSession {
  /**
   * Hashes `chunk`. Undefined when it was copied at once (the caller keeps the chunk); a
   * promise when it waits for room in the ring: the caller must leave `chunk` unchanged and
   * await it before its next update.
   */
  update(chunk: Uint8Array): Promise<void> | undefined
  /** The digests of everything updated, by algorithm. Ends the session. */
  digest(): Promise<Record<DigestAlgorithm, Buffer>>
  /** Ends the session without a digest (the body failed). Idempotent. */
  drop(): void
}

/** A worker thread computing running digests for any number of sessions. */
export class DigestThread {
  readonly #ringBytes: number
  readonly #minCopy: number
  #run: Running | undefined
  #sessions = new Map<number, SessionState>()
  #waiting: Waiting[] = []
  #next = 1
  #closed = false
  #bytes = 0
  #waits = 0

  /** `ringBytes` (default {@link DIGEST_RING_BYTES}) bounds the bytes not yet hashed. */
  constructor(opts: { ringBytes?: number } = {}) {
    this.#ringBytes = opts.ringBytes ?? DIGEST_RING_BYTES
    if (!Number.isInteger(this.#ringBytes) || this.#ringBytes < 4096) {
      throw new RangeError('DigestThread: ringBytes must be an integer of at least 4096')
    }
    this.#minCopy = Math.min(MIN_COPY_BYTES, Math.floor(this.#ringBytes / 4))
  }

  #ensure(): Running {
    if (this.#closed) throw new Error('DigestThread: closed')
    if (this.#run) return this.#run
    const data: DigestWorkerData = {
      ring: new SharedArrayBuffer(this.#ringBytes),
      control: new SharedArrayBuffer(8),
    }
    const worker = new Worker(WORKER_URL, { workerData: data })
    // No session keeps the process alive by itself; a session in progress has other handles.
    worker.unref()
    const run: Running = {
      worker,
      ring: new Uint8Array(data.ring),
      control: new Int32Array(data.control),
      written: 0,
    }
    worker.on('message', (m: DigestReply) => this.#onReply(m))
    const fail = (err: Error) => {
      if (this.#run !== run) return
      this.#run = undefined
      // Every session in progress fails; the next session starts a new thread and ring.
      this.#failAll(err)
    }
    worker.on('error', (err) => fail(err))
    worker.on('exit', (code) => fail(new Error(`the digest thread exited (${code})`)))
    this.#run = run
    return run
  }

  #failAll(err: Error): void {
    const waiting = this.#waiting
    this.#waiting = []
    for (const w of waiting) w.reject(err)
    for (const [id, s] of this.#sessions) {
      this.#sessions.delete(id)
      s.failed ??= err
      s.done?.reject(err)
      s.done = undefined
    }
  }

  #onReply(m: DigestReply): void {
    if (m.op === 'space') {
      this.#drain()
      return
    }
    const s = this.#sessions.get(m.id)
    if (s === undefined) return
    this.#sessions.delete(m.id)
    if (m.op === 'digest') {
      const out: Record<string, Buffer> = {}
      for (const [alg, d] of Object.entries(m.digests))
        out[alg] = Buffer.from(d.buffer, d.byteOffset, d.byteLength)
      s.done?.resolve(out)
    } else {
      const err = new Error(`digest thread: ${m.message}`)
      s.failed ??= err
      s.done?.reject(err)
    }
    s.done = undefined
  }

  /**
   * Copies `chunk` from `at` into the ring as far as there is room (in parts of at least
   * MIN_COPY_BYTES or a quarter of the ring, or the rest), telling the worker of each part; returns how far it got.
   */
  #copyIn(run: Running, s: SessionState, chunk: Uint8Array, at: number): number {
    const size = this.#ringBytes
    while (at < chunk.length) {
      // Counters are kept modulo 2^32; what is in flight is never more than the ring.
      const used = ((run.written >>> 0) - Atomics.load(run.control, CONSUMED)) >>> 0
      const n = Math.min(size - used, chunk.length - at)
      if (n < chunk.length - at && n < this.#minCopy) break
      const pos = run.written % size
      const first = Math.min(n, size - pos)
      run.ring.set(chunk.subarray(at, at + first), pos)
      if (first < n) run.ring.set(chunk.subarray(at + first, at + n), 0)
      run.written += n
      this.#bytes += n
      at += n
      run.worker.postMessage({ op: 'update', id: s.id, bytes: n } satisfies DigestRequest)
    }
    return at
  }

  /** Moves waiting pieces into the ring, first come first served, as room allows. */
  #drain(): void {
    const run = this.#run
    if (run === undefined) return
    let retried = false
    while (this.#waiting.length > 0) {
      const w = this.#waiting[0]!
      const at = this.#copyIn(run, w.s, w.chunk, w.at)
      if (at === w.chunk.length) {
        this.#waiting.shift()
        w.resolve()
        retried = false
        continue
      }
      const progressed = at > w.at
      w.at = at
      if (progressed) {
        retried = false
        continue
      }
      if (retried) return
      // Ask the worker to say when it frees room, then look once more: it may have freed some
      // between the look above and the flag (it reads the flag after publishing its counter).
      Atomics.store(run.control, WAITING, 1)
      retried = true
    }
  }

  /** Starts a running digest of the given algorithms. */
  session(algorithms: readonly DigestAlgorithm[]): DigestSession {
    const run = this.#ensure()
    const id = this.#next++
    const s: SessionState = { id, tail: undefined, done: undefined, failed: undefined }
    this.#sessions.set(id, s)
    run.worker.postMessage({ op: 'open', id, algorithms: [...algorithms] } satisfies DigestRequest)
    let ended = false
    return {
      update: (chunk) => {
        if (ended) throw new Error('DigestSession: update after the end')
        if (s.failed) throw s.failed
        if (chunk.length === 0) return undefined
        const at = this.#waiting.length === 0 ? this.#copyIn(run, s, chunk, 0) : 0
        if (at === chunk.length) return undefined
        this.#waits++
        const tail = new Promise<void>((resolve, reject) => {
          this.#waiting.push({ s, chunk, at, resolve, reject })
        })
        s.tail = tail
        this.#drain()
        return tail
      },
      digest: async () => {
        if (ended) throw new Error('DigestSession: digest after the end')
        ended = true
        // A piece still waiting for room goes in first.
        await s.tail
        if (s.failed) throw s.failed
        return new Promise((resolve, reject) => {
          s.done = { resolve: resolve as (d: Record<string, Buffer>) => void, reject }
          run.worker.postMessage({ op: 'digest', id } satisfies DigestRequest)
        })
      },
      drop: () => {
        if (ended) return
        ended = true
        // Its pieces still waiting are forgotten; those in the ring are read and skipped.
        const mine = this.#waiting.filter((w) => w.s === s)
        if (mine.length > 0) {
          this.#waiting = this.#waiting.filter((w) => w.s !== s)
          for (const w of mine) w.resolve()
          this.#drain()
        }
        if (this.#sessions.delete(id) && this.#run === run) {
          run.worker.postMessage({ op: 'drop', id } satisfies DigestRequest)
        }
      },
    }
  }

  /** Sessions in progress. */
  get sessions(): number {
    return this.#sessions.size
  }

  /** The backlog now, and the bytes and waits so far. */
  get stats(): DigestStats {
    const run = this.#run
    const backlogBytes =
      run === undefined ? 0 : ((run.written >>> 0) - Atomics.load(run.control, CONSUMED)) >>> 0
    return { backlogBytes, waiting: this.#waiting.length, bytes: this.#bytes, waits: this.#waits }
  }

  /** Stops the thread; sessions in progress fail. */
  async close(): Promise<void> {
    this.#closed = true
    const run = this.#run
    this.#run = undefined
    this.#failAll(new Error('DigestThread: closed'))
    await run?.worker.terminate()
  }
}
