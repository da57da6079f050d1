/* Design notes
 *
 * Calls over a framed, encrypted channel (see secure-channel.ts). Every frame starts with a
 * type byte and a 32-bit call id chosen by the caller; many calls share a channel.
 *
 *   REQ    [1][id][u16 rpc][u32 timeoutMs][u8 flags][msgpack request]   flags: 1 = body follows
 *   RES    [2][id][u8 flags][msgpack response | wire error]             flags: 1 = body, 2 = error
 *   DATA   [3][id][bytes]                                                a body chunk, either way
 *   END    [4][id][u8 1 = error][msgpack wire error]                     end of a body
 *   CANCEL [5][id]                                                       caller gave up
 *   CREDIT [6][id][u32 bytes]                                            body receiver grants bytes
 *   PING   [7][seq]                                                      caller: are you there?
 *   PONG   [8][seq]                                                      server: yes
 *
 * Bodies travel as DATA frames of at most BODY_CHUNK_BYTES, the chunk as its own frame part
 * (the channel seals parts one after another: no concatenation). Flow control is per body: the
 * sender may have at most the granted credit in flight (the first BODY_WINDOW_BYTES are
 * granted up front) and the receiver grants more only as its consumer takes data. So a slow
 * drive slows the gateway that streams to it, and a node holds at most BODY_WINDOW_BYTES per
 * inbound stream. The channel's own backpressure (send() false, 'drain') is respected too.
 *
 * Batching: small frames other than DATA and CREDIT wait for the end of the event-loop turn
 * (setImmediate) and then go out together, one writev per channel for all the calls and answers
 * of that turn; body frames and large frames go at once, after what is held (see send()).
 *
 * Deadlines: the caller sends its timeout; the server aborts the handler's signal when it
 * passes; the caller rejects with DEADLINE_EXCEEDED and sends CANCEL.
 *
 * Liveness: a cut link or a frozen peer answers nothing, and TCP takes minutes to notice. The
 * caller pings whenever it has heard nothing for KEEPALIVE_MS; the server answers from its
 * frame handler. After DEAD_AFTER_MS of silence the caller closes the channel with
 * NODE_UNAVAILABLE, failing every call on it at once: a silent peer costs its callers one
 * detection window, not each call its whole deadline (the peer pool then fails calls fast
 * while it redials).
 */
import { Packr } from 'msgpackr'
import type { BufferPool } from './buffer-pool.ts'
import {
  fromWire,
  type StoreError,
  StoreError as StoreErrorClass,
  toStoreError,
  type WireError,
} from './errors.ts'

/** The transport the RPC layer runs on: a sealed, message-framed duplex. */
export interface FrameChannel {
  readonly remoteId: string
  readonly closed: boolean
  send(parts: readonly Uint8Array[]): boolean
  on(event: 'frame', listener: (frame: Buffer) => void): unknown
  on(event: 'drain', listener: () => void): unknown
  on(event: 'close', listener: (err?: Error) => void): unknown
  off(event: 'drain' | 'close', listener: () => void): unknown
  close(err?: Error): void
}

/** An RPC, declared once and used by both sides: request and response types tied together. */
export interface RpcDef<Req, Res> {
  readonly id: number
  readonly name: string
  /** The request carries a byte stream after its header. */
  readonly requestBody: boolean
  /** The response carries a byte stream after its header. */
  readonly responseBody: boolean
  /** Type carriers only; never set. */
  readonly _req?: Req
  readonly _res?: Res
}

export function defineRpc<Req, Res>(def: {
  id: number
  name: string
  requestBody?: boolean
  responseBody?: boolean
}): RpcDef<Req, Res> {
  return { requestBody: false, responseBody: false, ...def }
}

/** Largest DATA frame payload. */
export const BODY_CHUNK_BYTES = 1024 * 1024
/** Bytes a body sender may have in flight before the receiver grants more. */
export const BODY_WINDOW_BYTES = 4 * 1024 * 1024
/** Default call timeout. */
export const DEFAULT_TIMEOUT_MS = 30_000
/** The caller pings a channel it has heard nothing on for this long. */
export const KEEPALIVE_MS = 1000
/** A channel silent for this long (pings unanswered) is closed as dead. */
export const DEAD_AFTER_MS = 5000

const REQ = 1
const RES = 2
const DATA = 3
const END = 4
const CANCEL = 5
const CREDIT = 6
const PING = 7
const PONG = 8

const packr = new Packr({ useRecords: false, int64AsType: 'number' })
const encode = (v: unknown): Buffer => packr.pack(v)
const decode = (b: Uint8Array): unknown => packr.unpack(b)

function head(type: number, id: number, extra = 0): Buffer {
  // Zeroed: flag bytes that a sender leaves alone must read as 0, not as old heap bytes.
  const b = Buffer.alloc(5 + extra)
  b[0] = type
  b.writeUInt32BE(id, 1)
  return b
}

/**
 * A body arriving over the channel: an async iterable of chunks with credit-based flow
 * control. Chunks are views of the decrypted frames (no copy), or, with a pool, copies in
 * pooled buffers made as they arrive (see buffer-pool.ts): the reader releases those.
 */
class InboundBody implements AsyncIterable<Uint8Array> {
  #queue: Uint8Array[] = []
  #waiting: ((r: IteratorResult<Uint8Array>) => void) | undefined
  #failWaiting: ((err: Error) => void) | undefined
  #done = false
  #error: Error | undefined
  #unacked = 0
  #grant: (bytes: number) => void
  #onAbandon: () => void
  #taken = false
  readonly #pool: BufferPool | undefined

  constructor(grant: (bytes: number) => void, onAbandon: () => void, pool?: BufferPool) {
    this.#grant = grant
    this.#onAbandon = onAbandon
    this.#pool = pool
  }

  push(frameChunk: Uint8Array): void {
    if (this.#discarding) {
      this.#grant(frameChunk.length)
      return
    }
    if (this.#done) return
    const chunk = this.#pool ? this.#pool.copy(frameChunk) : frameChunk
    if (this.#waiting) {
      const w = this.#waiting
      this.#waiting = undefined
      this.#failWaiting = undefined
      this.#consumed(chunk.length)
      w({ value: chunk, done: false })
    } else this.#queue.push(chunk)
  }

  #discarding = false
  #ended: (() => void) | undefined

  /**
   * Throws away what is left of the body (granting credit so the sender can finish) and
   * resolves when the sender has ended it. For handlers that answered without reading it all.
   */
  discard(): Promise<void> {
    if (this.#done) return Promise.resolve()
    this.#discarding = true
    const queued = this.#queue.reduce((a, c) => a + c.length, 0)
    this.#dropQueue()
    if (queued > 0) this.#grant(queued)
    return new Promise((resolve) => {
      this.#ended = resolve
    })
  }

  end(err?: Error): void {
    this.#ended?.()
    if (this.#done) return
    this.#done = true
    this.#error = err
    if (this.#waiting && this.#queue.length === 0) {
      const w = this.#waiting
      const f = this.#failWaiting
      this.#waiting = undefined
      this.#failWaiting = undefined
      if (err) f?.(err)
      else w({ value: undefined, done: true })
    }
  }

  /** Empties the queue; its pooled copies were never given out, so they go back. */
  #dropQueue(): void {
    if (this.#pool) for (const c of this.#queue) this.#pool.release(c)
    this.#queue = []
  }

  #consumed(n: number): void {
    this.#unacked += n
    // Grant in quarter-window steps: the sender always has credit left when a grant lands
    // (half-window steps measured 25% slower streams: the sender idled for the round trip).
    if (this.#unacked >= BODY_WINDOW_BYTES / 4) {
      this.#grant(this.#unacked)
      this.#unacked = 0
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    if (this.#taken) throw new Error('a body can be read only once')
    this.#taken = true
    return {
      next: () => {
        const chunk = this.#queue.shift()
        if (chunk !== undefined) {
          this.#consumed(chunk.length)
          return Promise.resolve({ value: chunk, done: false })
        }
        if (this.#done) {
          return this.#error
            ? Promise.reject(this.#error)
            : Promise.resolve({ value: undefined, done: true })
        }
        return new Promise((resolve, reject) => {
          this.#waiting = resolve
          this.#failWaiting = reject
        })
      },
      return: () => {
        if (!this.#done) {
          this.#done = true
          this.#dropQueue()
          this.#onAbandon()
        } else this.#dropQueue()
        return Promise.resolve({ value: undefined, done: true })
      },
    }
  }
}

/** Sends a body as DATA frames within the credit the receiver grants, then END. */
class OutboundBody {
  #credit = BODY_WINDOW_BYTES
  #wake: (() => void) | undefined
  #stopped: Error | undefined

  grant(bytes: number): void {
    this.#credit += bytes
    this.#wakeUp()
  }

  stop(err: Error): void {
    this.#stopped = err
    this.#wakeUp()
  }

  #wakeUp(): void {
    const w = this.#wake
    this.#wake = undefined
    w?.()
  }

  async pump(ch: FrameChannel, id: number, body: AsyncIterable<Uint8Array>): Promise<void> {
    try {
      for await (const chunk of body) {
        for (let at = 0; at < chunk.length; at += BODY_CHUNK_BYTES) {
          const piece = chunk.subarray(at, at + BODY_CHUNK_BYTES)
          // Wait for credit; a chunk may overshoot the window once, so no deadlock on big chunks.
          while (this.#credit <= 0 && !this.#stopped)
            await new Promise<void>((r) => (this.#wake = r))
          if (this.#stopped) throw this.#stopped
          this.#credit -= piece.length
          if (!send(ch, [head(DATA, id), piece])) await drained(ch)
        }
        if (this.#stopped) throw this.#stopped
      }
      send(ch, [head(END, id, 1)])
    } catch (err) {
      if (this.#stopped) return
      const w = toStoreError(err).toWire()
      const h = head(END, id, 1)
      h[5] = 1
      send(ch, [h, encode(w)])
    }
  }
}

/** Frames up to this size (all parts) may wait for the end of the event-loop turn. */
export const BATCH_FRAME_MAX_BYTES = 64 * 1024

// Frames held back until the end of this event-loop turn, per channel, in send order. The
// channel corks one tick (one handler) at a time; holding small frames until setImmediate lets
// every call and answer made in this turn (32 concurrent small GETs answer many per turn) leave
// in one writev per channel, instead of one per request: on loopback each write also wakes the
// peer, and those writes were a quarter to a third of a gateway's time under small-object load.
const held = new Map<FrameChannel, (readonly Uint8Array[])[]>()
let flushQueued = false

function flushHeld(): void {
  flushQueued = false
  for (const [ch, frames] of held) {
    held.delete(ch)
    for (const parts of frames) {
      if (ch.closed) break
      try {
        ch.send(parts)
      } catch (err) {
        // Small frames fail only with the channel itself (nonces exhausted): close it, which
        // settles its calls, rather than throw from a timer.
        ch.close(err as Error)
        break
      }
    }
  }
}

/**
 * Sends a frame; false when the caller should wait for 'drain'. A channel that closed under us
 * (a reply racing a disconnect) swallows the frame: the close itself settles every call.
 *
 * Small frames other than DATA and CREDIT are held until the end of the event-loop turn (see
 * `held`) and report no backpressure, which only body DATA frames are paced by. Body frames
 * (DATA, and the CREDIT that lets the peer send more) and large frames go at once, after the
 * channel's held frames, so the order on the wire is the order of the sends.
 */
function send(ch: FrameChannel, parts: readonly Uint8Array[]): boolean {
  if (ch.closed) return true
  let bytes = 0
  for (const p of parts) bytes += p.byteLength
  const queue = held.get(ch)
  const type = parts[0]?.[0]
  if (type !== DATA && type !== CREDIT && bytes <= BATCH_FRAME_MAX_BYTES) {
    if (queue === undefined) held.set(ch, [parts])
    else queue.push(parts)
    if (!flushQueued) {
      flushQueued = true
      setImmediate(flushHeld)
    }
    return true
  }
  try {
    if (queue !== undefined) {
      held.delete(ch)
      for (const q of queue) ch.send(q)
    }
    return ch.send(parts)
  } catch (err) {
    if (ch.closed) return true
    throw err
  }
}

// One 'drain' wait per channel, shared by every body waiting on it (many streams share a
// channel: a listener each would pile up).
const drains = new WeakMap<FrameChannel, Promise<void>>()

function drained(ch: FrameChannel): Promise<void> {
  let p = drains.get(ch)
  if (p === undefined) {
    p = new Promise<void>((resolve) => {
      // A close ends the wait too: the sender then finds its body stopped.
      const done = (): void => {
        ch.off('drain', done)
        ch.off('close', done)
        drains.delete(ch)
        resolve()
      }
      ch.on('drain', done)
      ch.on('close', done)
    })
    drains.set(ch, p)
  }
  return p
}

// ---------------------------------------------------------------------------------------------
// Server

/** What a handler gets besides its request. */
export interface CallContext {
  /** The request body, for RPCs declared with requestBody. */
  body: AsyncIterable<Uint8Array>
  /** Aborted when the caller cancels, the deadline passes or the channel closes. */
  signal: AbortSignal
  /** The caller's identity (public id). */
  remoteId: string
}

/** A response with a body, for RPCs declared with responseBody. */
export interface WithBody<Res> {
  res: Res
  body: AsyncIterable<Uint8Array>
}

export type Handler<Req, Res> = (
  req: Req,
  ctx: CallContext,
) => Promise<RpcDefResponse<Res>> | RpcDefResponse<Res>
type RpcDefResponse<Res> = Res | WithBody<Res>

/** Marks a response that carries a body. */
export function withBody<Res>(res: Res, body: AsyncIterable<Uint8Array>): WithBody<Res> {
  return { res, body, [BODY_MARK]: true } as WithBody<Res>
}
const BODY_MARK = Symbol('tessera.rpc.body')

const EMPTY_BODY: AsyncIterable<Uint8Array> = {
  [Symbol.asyncIterator]: () => ({ next: async () => ({ value: undefined, done: true }) }),
}

interface ServerCall {
  abort: AbortController
  inbound?: InboundBody
  outbound?: OutboundBody
  timer?: NodeJS.Timeout
}

/** Dispatches calls arriving on channels to the handlers registered for each RPC. */
export class RpcServer {
  #handlers = new Map<number, { def: RpcDef<unknown, unknown>; fn: Handler<unknown, unknown> }>()

  handle<Req, Res>(def: RpcDef<Req, Res>, fn: Handler<Req, Res>): void {
    if (this.#handlers.has(def.id))
      throw new Error(`RPC ${def.name} (${def.id}) is registered twice`)
    this.#handlers.set(def.id, {
      def: def as RpcDef<unknown, unknown>,
      fn: fn as Handler<unknown, unknown>,
    })
  }

  /** Serves calls from this channel until it closes. */
  attach(ch: FrameChannel): void {
    const calls = new Map<number, ServerCall>()
    ch.on('frame', (frame) => {
      // A malformed frame is the peer's fault: close its channel, never crash the process.
      try {
        this.#onFrame(ch, calls, frame)
      } catch (err) {
        ch.close(new Error(`bad RPC frame from ${ch.remoteId}: ${(err as Error).message}`))
      }
    })
    ch.on('close', () => {
      const err = new StoreErrorClass('CHANNEL_CLOSED', `the channel to ${ch.remoteId} closed`)
      for (const c of calls.values()) {
        c.abort.abort(err)
        c.inbound?.end(err)
        c.outbound?.stop(err)
        clearTimeout(c.timer)
      }
      calls.clear()
    })
  }

  #onFrame(ch: FrameChannel, calls: Map<number, ServerCall>, frame: Buffer): void {
    const type = frame[0]
    const id = frame.readUInt32BE(1)
    if (type === REQ) this.#start(ch, calls, id, frame)
    else if (type === DATA) calls.get(id)?.inbound?.push(frame.subarray(5))
    else if (type === END) {
      const c = calls.get(id)
      c?.inbound?.end(frame[5] === 1 ? fromWire(decode(frame.subarray(6)) as WireError) : undefined)
    } else if (type === CREDIT) calls.get(id)?.outbound?.grant(frame.readUInt32BE(5))
    else if (type === PING) send(ch, [head(PONG, id)])
    else if (type === CANCEL) {
      const c = calls.get(id)
      const err = new StoreErrorClass('CANCELLED', 'the caller cancelled the call')
      c?.abort.abort(err)
      c?.inbound?.end(err)
      c?.outbound?.stop(err)
    } else ch.close(new Error(`unknown RPC frame type ${type} from ${ch.remoteId}`))
  }

  #start(ch: FrameChannel, calls: Map<number, ServerCall>, id: number, frame: Buffer): void {
    const rpcId = frame.readUInt16BE(5)
    const timeoutMs = frame.readUInt32BE(7)
    const hasBody = (frame[11]! & 1) === 1
    const call: ServerCall = { abort: new AbortController() }
    calls.set(id, call)
    if (hasBody) {
      call.inbound = new InboundBody(
        (bytes) => {
          const h = head(CREDIT, id, 4)
          h.writeUInt32BE(bytes, 5)
          send(ch, [h])
        },
        () => {},
      )
    }
    call.timer = setTimeout(() => {
      const err = new StoreErrorClass('DEADLINE_EXCEEDED', `deadline of ${timeoutMs} ms passed`)
      call.abort.abort(err)
      call.inbound?.end(err)
    }, timeoutMs)
    const finish = (): void => {
      clearTimeout(call.timer)
      calls.delete(id)
    }
    const fail = (err: unknown): void => {
      if (!calls.has(id)) return
      finish()
      const h = head(RES, id, 1)
      h[5] = 2
      send(ch, [h, encode(toStoreError(err).toWire())])
    }
    const entry = this.#handlers.get(rpcId)
    if (entry === undefined) {
      fail(new StoreErrorClass('UNKNOWN_RPC', `no RPC with id ${rpcId} on this node`))
      return
    }
    let req: unknown
    try {
      req = decode(frame.subarray(12))
    } catch (err) {
      fail(
        new StoreErrorClass('INVALID_REQUEST', `${entry.def.name}: undecodable request`, {}, err),
      )
      return
    }
    const ctx: CallContext = {
      body: call.inbound ?? EMPTY_BODY,
      signal: call.abort.signal,
      remoteId: ch.remoteId,
    }
    Promise.resolve()
      .then(() => entry.fn(req, ctx))
      .then(
        async (out) => {
          if (!calls.has(id)) return
          const isBody = typeof out === 'object' && out !== null && BODY_MARK in out
          const withB = out as unknown as WithBody<unknown>
          const h = head(RES, id, 1)
          h[5] = isBody ? 1 : 0
          send(ch, [h, encode(isBody ? withB.res : out)])
          // A handler that answered without reading all of its request body: let the rest
          // flow in and out so the caller's sender finishes, before the call is forgotten.
          if (call.inbound) await call.inbound.discard()
          if (isBody) {
            call.outbound = new OutboundBody()
            await call.outbound.pump(ch, id, withB.body)
          }
          finish()
        },
        (err) => fail(err),
      )
      .catch((err) => fail(err))
  }
}

// ---------------------------------------------------------------------------------------------
// Client

export interface CallOptions {
  /** A request body, for RPCs declared with requestBody. */
  body?: AsyncIterable<Uint8Array>
  timeoutMs?: number
  signal?: AbortSignal
  /**
   * For RPCs that answer with a body: copy each large chunk into a buffer of this pool as it
   * arrives. The reader must release every chunk it gets once it is done with it.
   */
  buffers?: BufferPool
}

interface ClientCall {
  resolve(v: { res: unknown; body?: AsyncIterable<Uint8Array> }): void
  reject(err: StoreError): void
  inbound?: InboundBody
  outbound?: OutboundBody
  timer: NodeJS.Timeout
  wantsBody: boolean
  answered: boolean
  /** Our request body is still being sent. */
  pumping: boolean
  /** Removes the caller's abort listener (a long-lived signal must not collect them). */
  detach?: () => void
  buffers?: BufferPool
}

/** Makes calls over one channel. Many calls may be in flight at once. */
export interface RpcClientOptions {
  /** Ping after this much silence; default KEEPALIVE_MS. */
  keepaliveMs?: number
  /** Close the channel after this much silence; default DEAD_AFTER_MS. */
  deadAfterMs?: number
}

export class RpcClient {
  readonly channel: FrameChannel
  #next = 1
  #calls = new Map<number, ClientCall>()
  #closed: StoreError | undefined
  #heardAt = Date.now()
  #pingSeq = 0
  #liveness: NodeJS.Timeout

  constructor(ch: FrameChannel, opts: RpcClientOptions = {}) {
    this.channel = ch
    const keepaliveMs = opts.keepaliveMs ?? KEEPALIVE_MS
    const deadAfterMs = opts.deadAfterMs ?? DEAD_AFTER_MS
    const tickMs = Math.max(10, Math.floor(keepaliveMs / 2))
    let lastTick = Date.now()
    this.#liveness = setInterval(() => {
      const now = Date.now()
      // A late tick means this process stalled (timers run before pending socket reads):
      // the peer's answers may be waiting unread, so its silence is not its fault.
      const stalled = now - lastTick > tickMs * 4
      lastTick = now
      if (stalled) {
        this.#heardAt = now
        return
      }
      const silent = now - this.#heardAt
      if (silent >= deadAfterMs) {
        ch.close(
          new StoreErrorClass(
            'NODE_UNAVAILABLE',
            `${ch.remoteId} answered nothing for ${silent} ms (pings included)`,
          ),
        )
      } else if (silent >= keepaliveMs) {
        this.#pingSeq = this.#pingSeq >= 0xffffffff ? 0 : this.#pingSeq + 1
        send(ch, [head(PING, this.#pingSeq)])
      }
    }, tickMs)
    this.#liveness.unref()
    ch.on('frame', (frame) => {
      this.#heardAt = Date.now()
      try {
        this.#onFrame(frame)
      } catch (err) {
        ch.close(new Error(`bad RPC frame from ${ch.remoteId}: ${(err as Error).message}`))
      }
    })
    ch.on('close', (err) => {
      clearInterval(this.#liveness)
      this.#closed = new StoreErrorClass(
        (err as { code?: string } | undefined)?.code === 'NODE_UNAVAILABLE'
          ? 'NODE_UNAVAILABLE'
          : 'CHANNEL_CLOSED',
        `the channel to ${ch.remoteId} closed${err ? `: ${err.message}` : ''}`,
      )
      for (const c of this.#calls.values()) {
        c.detach?.()
        this.#settleError(c, this.#closed)
      }
      this.#calls.clear()
    })
  }

  /** Calls in flight (for choosing the least busy connection). */
  get inFlight(): number {
    return this.#calls.size
  }

  get closed(): boolean {
    return this.#closed !== undefined
  }

  /**
   * Milliseconds since the peer last sent anything on this channel. A live peer answers the
   * pings sent after KEEPALIVE_MS of silence, so it stays below about 1.5 × KEEPALIVE_MS; a
   * silent one (frozen, or behind a cut link) grows until the channel is declared dead.
   */
  get silentMs(): number {
    return Date.now() - this.#heardAt
  }

  /** Why the channel closed (NODE_UNAVAILABLE when the peer went silent). */
  get closeError(): StoreError | undefined {
    return this.#closed
  }

  /** Calls an RPC that has no response body. */
  async call<Req, Res>(def: RpcDef<Req, Res>, req: Req, opts: CallOptions = {}): Promise<Res> {
    const { res } = await this.#call(def, req, opts)
    return res as Res
  }

  /** Calls an RPC that answers with a body; the body must be read (or returned) by the caller. */
  async callStream<Req, Res>(
    def: RpcDef<Req, Res>,
    req: Req,
    opts: CallOptions = {},
  ): Promise<{ res: Res; body: AsyncIterable<Uint8Array> }> {
    const out = await this.#call(def, req, opts)
    return { res: out.res as Res, body: out.body ?? EMPTY_BODY }
  }

  #call(
    def: RpcDef<unknown, unknown>,
    req: unknown,
    opts: CallOptions,
  ): Promise<{ res: unknown; body?: AsyncIterable<Uint8Array> }> {
    if (this.#closed) return Promise.reject(this.#closed)
    if (def.requestBody !== (opts.body !== undefined)) {
      return Promise.reject(
        new StoreErrorClass(
          'INVALID_REQUEST',
          `${def.name} ${def.requestBody ? 'needs' : 'takes no'} request body`,
        ),
      )
    }
    const id = this.#next
    this.#next = this.#next >= 0xffffffff ? 1 : this.#next + 1
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
    return new Promise((resolve, reject) => {
      const call: ClientCall = {
        resolve,
        reject,
        wantsBody: def.responseBody,
        answered: false,
        pumping: opts.body !== undefined,
        ...(opts.buffers ? { buffers: opts.buffers } : {}),
        timer: setTimeout(() => {
          this.#cancel(
            id,
            new StoreErrorClass(
              'DEADLINE_EXCEEDED',
              `${def.name} to ${this.channel.remoteId} took over ${timeoutMs} ms`,
            ),
          )
        }, timeoutMs),
      }
      this.#calls.set(id, call)
      const signal = opts.signal
      if (signal) {
        const onAbort = () =>
          this.#cancel(id, new StoreErrorClass('CANCELLED', `${def.name} was cancelled`))
        signal.addEventListener('abort', onAbort, { once: true })
        call.detach = () => signal.removeEventListener('abort', onAbort)
      }
      const h = head(REQ, id, 7)
      h.writeUInt16BE(def.id, 5)
      h.writeUInt32BE(timeoutMs, 7)
      h[11] = opts.body ? 1 : 0
      send(this.channel, [h, encode(req)])
      if (opts.body) {
        call.outbound = new OutboundBody()
        void call.outbound.pump(this.channel, id, opts.body).then(() => {
          call.pumping = false
          // Answered without a body while we were still sending: the call is over now.
          if (call.answered && !call.inbound) this.#drop(id)
        })
      }
    })
  }

  /** Forgets a finished call. */
  #drop(id: number): void {
    const c = this.#calls.get(id)
    if (c === undefined) return
    this.#calls.delete(id)
    c.detach?.()
  }

  #cancel(id: number, err: StoreError): void {
    const c = this.#calls.get(id)
    if (!c) return
    this.#drop(id)
    send(this.channel, [head(CANCEL, id)])
    this.#settleError(c, err)
  }

  #settleError(c: ClientCall, err: StoreError): void {
    clearTimeout(c.timer)
    c.outbound?.stop(err)
    if (c.answered) c.inbound?.end(err)
    else {
      c.answered = true
      c.reject(err)
    }
  }

  #onFrame(frame: Buffer): void {
    const type = frame[0]
    if (type === PONG) return
    const id = frame.readUInt32BE(1)
    const c = this.#calls.get(id)
    if (c === undefined) return // a late frame of a cancelled call
    if (type === RES) {
      const flags = frame[5]!
      const payload = decode(frame.subarray(6))
      if (flags & 2) {
        this.#drop(id)
        c.outbound?.stop(fromWire(payload as WireError))
        this.#settleError(c, fromWire(payload as WireError))
        return
      }
      c.answered = true
      if (flags & 1) {
        c.inbound = new InboundBody(
          (bytes) => {
            const h = head(CREDIT, id, 4)
            h.writeUInt32BE(bytes, 5)
            send(this.channel, [h])
          },
          () =>
            this.#cancel(id, new StoreErrorClass('CANCELLED', 'the response body was abandoned')),
          c.buffers,
        )
        c.resolve({ res: payload, body: c.inbound })
      } else {
        clearTimeout(c.timer)
        // Keep the call while our request body is still being sent; it ends with the pump.
        if (!c.pumping) this.#drop(id)
        c.resolve({ res: payload })
      }
    } else if (type === DATA) c.inbound?.push(frame.subarray(5))
    else if (type === END) {
      clearTimeout(c.timer)
      this.#drop(id)
      c.inbound?.end(frame[5] === 1 ? fromWire(decode(frame.subarray(6)) as WireError) : undefined)
    } else if (type === CREDIT) c.outbound?.grant(frame.readUInt32BE(5))
  }
}
