/**
 * Running digests (MD5 for ETags and Content-MD5, SHA-256 for signed payloads, SHA-1) of
 * request bodies, computed on a thread of their own instead of the gateway's event loop.
 *
 * Why: MD5 cannot be split across blocks or threads — each byte waits for the digest of all
 * before it — so the codec pool cannot take it, and on the main thread it was a third of a
 * large PUT's work (node:crypto's MD5 runs at about 0.74 GB/s). A session sends its body's
 * pieces, in order, to one long-lived worker that keeps the hash object; the digest comes back
 * once the body has ended. Each piece is copied once (the body's buffers go on to the codec,
 * which takes them by transfer) and the copy is transferred, not cloned. A session holds at
 * most {@link DIGEST_MAX_PENDING_BYTES} not yet hashed: past that, `update` returns false and
 * the caller awaits `caughtUp()`, so a thread that falls behind slows its bodies
 * down instead of queueing them in memory.
 */
import { Worker } from 'node:worker_threads'

/** The digests a thread computes: node:crypto's names. */
export type DigestAlgorithm = 'md5' | 'sha1' | 'sha256'

/** Bytes a session may have sent and not yet seen hashed before `update` waits. */
export const DIGEST_MAX_PENDING_BYTES = 2 * 1024 * 1024

const WORKER_URL = new URL('./digest-worker.js', import.meta.url)

/** Messages to the worker. */
export type DigestRequest =
  | { op: 'open'; id: number; algorithms: DigestAlgorithm[] }
  | { op: 'update'; id: number; data: Uint8Array }
  | { op: 'digest'; id: number }
  | { op: 'drop'; id: number }

/** Messages from the worker. */
export type DigestReply =
  | { op: 'hashed'; id: number; bytes: number }
  | { op: 'digest'; id: number; digests: Record<string, Uint8Array> }
  | { op: 'error'; id: number; message: string }

interface SessionState {
  pending: number
  /** Resolves the update waiting for the thread to catch up. */
  wake: (() => void) | undefined
  done: { resolve(d: Record<string, Buffer>): void; reject(err: Error): void } | undefined
  failed: Error | undefined
}

/** One running digest of one body; see {@link DigestThread.session}. */
export interface DigestSession {
  /**
   * Hashes `chunk` (copied: the caller keeps it). Returns false when the thread is more than
   * {@link DIGEST_MAX_PENDING_BYTES} behind: await {@link caughtUp} before the next update.
   */
  update(chunk: Uint8Array): boolean
  /** Resolves once the thread is no more than {@link DIGEST_MAX_PENDING_BYTES} behind. */
  caughtUp(): Promise<void>
  /** The digests of everything updated, by algorithm. Ends the session. */
  digest(): Promise<Record<DigestAlgorithm, Buffer>>
  /** Ends the session without a digest (the body failed). Idempotent. */
  drop(): void
}

/** A worker thread computing running digests for any number of sessions. */
export class DigestThread {
  #worker: Worker | undefined
  #sessions = new Map<number, SessionState>()
  #next = 1
  #closed = false

  #ensure(): Worker {
    if (this.#closed) throw new Error('DigestThread: closed')
    if (this.#worker) return this.#worker
    const w = new Worker(WORKER_URL)
    // No session keeps the process alive by itself; a session in progress has other handles.
    w.unref()
    w.on('message', (m: DigestReply) => this.#onReply(m))
    const fail = (err: Error) => {
      if (this.#worker !== w) return
      this.#worker = undefined
      // Every session in progress fails; the next session starts a new thread.
      for (const [id, s] of this.#sessions) {
        this.#sessions.delete(id)
        this.#fail(s, err)
      }
    }
    w.on('error', (err) => fail(err))
    w.on('exit', (code) => fail(new Error(`the digest thread exited (${code})`)))
    this.#worker = w
    return w
  }

  #fail(s: SessionState, err: Error): void {
    s.failed ??= err
    s.wake?.()
    s.wake = undefined
    s.done?.reject(err)
    s.done = undefined
  }

  #onReply(m: DigestReply): void {
    const s = this.#sessions.get(m.id)
    if (s === undefined) return
    if (m.op === 'hashed') {
      s.pending -= m.bytes
      if (s.wake && s.pending <= DIGEST_MAX_PENDING_BYTES) {
        const wake = s.wake
        s.wake = undefined
        wake()
      }
    } else if (m.op === 'digest') {
      this.#sessions.delete(m.id)
      const out: Record<string, Buffer> = {}
      for (const [alg, d] of Object.entries(m.digests))
        out[alg] = Buffer.from(d.buffer, d.byteOffset, d.byteLength)
      s.done?.resolve(out)
    } else {
      this.#sessions.delete(m.id)
      this.#fail(s, new Error(`digest thread: ${m.message}`))
    }
  }

  /** Starts a running digest of the given algorithms. */
  session(algorithms: readonly DigestAlgorithm[]): DigestSession {
    const worker = this.#ensure()
    const id = this.#next++
    const s: SessionState = { pending: 0, wake: undefined, done: undefined, failed: undefined }
    this.#sessions.set(id, s)
    const post = (m: DigestRequest, transfer?: ArrayBuffer[]) => worker.postMessage(m, transfer)
    post({ op: 'open', id, algorithms: [...algorithms] })
    let ended = false
    return {
      update: (chunk) => {
        if (ended) throw new Error('DigestSession: update after the end')
        if (s.failed) throw s.failed
        if (chunk.length > 0) {
          const copy = new Uint8Array(chunk)
          s.pending += copy.length
          post({ op: 'update', id, data: copy }, [copy.buffer as ArrayBuffer])
        }
        return s.pending <= DIGEST_MAX_PENDING_BYTES
      },
      caughtUp: () => {
        if (s.failed) return Promise.reject(s.failed)
        if (s.pending <= DIGEST_MAX_PENDING_BYTES) return Promise.resolve()
        return new Promise<void>((resolve, reject) => {
          s.wake = () => (s.failed ? reject(s.failed) : resolve())
        })
      },
      digest: () => {
        if (ended) return Promise.reject(new Error('DigestSession: digest after the end'))
        ended = true
        if (s.failed) return Promise.reject(s.failed)
        return new Promise((resolve, reject) => {
          s.done = { resolve: resolve as (d: Record<string, Buffer>) => void, reject }
          post({ op: 'digest', id })
        })
      },
      drop: () => {
        if (ended) return
        ended = true
        if (this.#sessions.delete(id) && this.#worker === worker) post({ op: 'drop', id })
      },
    }
  }

  /** Sessions in progress. */
  get sessions(): number {
    return this.#sessions.size
  }

  /** Stops the thread; sessions in progress fail. */
  async close(): Promise<void> {
    this.#closed = true
    const w = this.#worker
    this.#worker = undefined
    for (const [id, s] of this.#sessions) {
      this.#sessions.delete(id)
      this.#fail(s, new Error('DigestThread: closed'))
    }
    await w?.terminate()
  }
}
