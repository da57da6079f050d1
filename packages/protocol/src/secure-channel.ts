/* Design notes
 *
 * A secure channel is one TCP connection between two Tessera processes (node ↔ node, gateway
 * → node), mutually authenticated by their identity keys and carrying encrypted frames.
 * js-libp2p's full stack (noise + yamux) streams at about a tenth of raw TCP, so libp2p-noise
 * is used for what it is good at, the Noise XX handshake that proves both identity keys, and
 * the data path is our own: large length-prefixed frames sealed with Node's native
 * ChaCha20-Poly1305, written straight to the socket.
 *
 * 1. Handshake. The dialer connects and runs secureOutbound with the listener id it expects
 *    (noise verifies the proof and fails with UnexpectedPeerError otherwise); the listener runs
 *    secureInbound and learns the dialer's id. Noise talks to the socket through
 *    NoiseTransport, a duplex over the net.Socket that hands noise whole noise messages (u16 BE
 *    length + body), one per pull, and never more than the number of messages noise is owed:
 *    XX sends the dialer 1 handshake message and the listener 2, then each side receives
 *    exactly one hello. So noise can never read past its last message, even if a stage of its
 *    pipeline were to read ahead: whatever the socket delivered beyond that stays in
 *    NoiseTransport's queue and becomes the first raw bytes of the channel.
 *
 * 2. Hello, through noise. The dialer sends { version, mapHash, role, keyMaterial } and waits.
 *    The listener reads it, asks `authorize` (an unknown key is dropped at once: nothing is
 *    sent to it, and the dialer sees the close as REFUSED), compares version and map hash (a
 *    mismatch is answered with a hello carrying `refused` and the listener's own values, so
 *    the dialer can name both), then replies with its own hello. Each side switches to raw
 *    mode once its hello is on the socket and the peer's hello is read: pause the socket, move
 *    the 'data' listener from NoiseTransport to the channel in one synchronous step (no chunk
 *    can fall between them), carry over the queued bytes, and end noise's streams.
 *
 * 3. Session keys. keyMaterial is 32 random bytes from each side, known only to the two ends
 *    of the noise session. HKDF-SHA256 over dialer ‖ listener material gives one 32-byte key
 *    per direction (info 'tessera/1 dialer->listener' / 'tessera/1 listener->dialer'), so no
 *    key and nonce pair is ever used by both sides.
 *
 * 4. Frames: [u32 BE length][ciphertext][16-byte Poly1305 tag], length = plaintext bytes ≤
 *    MAX_FRAME_BYTES. Nonce = 4 zero bytes ‖ u64 BE frame counter of that direction; the
 *    channel closes rather than let a counter wrap. A frame's parts are encrypted one by one
 *    with one cipher (no concatenation before encryption), in 64 KiB cipher.update() slices,
 *    and the frames of one tick leave in one cork/uncork (one writev). Received bytes are
 *    copied into the channel's receive buffer (contiguous, grown to the largest frame and
 *    reused); once a whole frame is there it is decrypted with one update() where it lies.
 *    A dialed socket reads through net's `onread` into one buffer shared by the process, so
 *    the dialer (a gateway reading shards) allocates nothing per socket read; an accepted
 *    socket gets net's own chunk per read. A frame is emitted only after its tag checks out. A bad tag or an oversized length closes the channel.
 *    Replay and reordering fail the tag (the counter is in the nonce); a cut connection is
 *    just a close: callers must not read meaning into the last frame before a close (as with
 *    TLS without close_notify).
 *
 *    Why one update per frame and not one per chunk (which would overlap decryption with
 *    reading): every update() returns a fresh buffer (Node has no decrypt-into API), and
 *    fresh buffer bytes are what drives V8's major GCs here. One update per frame allocates
 *    only the plaintext the caller gets: 2 bytes allocated per byte received (socket chunk +
 *    plaintext) instead of 3, for ~25% less receiver CPU than decrypting chunk by chunk; 1
 *    byte per byte on a dialed socket (no socket chunk). A 64 MiB GET through the gateway:
 *    ~15% less gateway CPU per byte, its GC share 19% → 16.5%.
 *
 *    Cost model (bench/src/channel.bench.ts, 2 vCPUs): the cipher is not the bottleneck; V8's
 *    background GC threads are. TLS seals in C++ buffers and allocates nothing on the send
 *    side, we allocate 1 byte per byte sent (cipher output) and 2 per byte received. With
 *    default flags, perf shows ~30-40% of each process in concurrent marking and sweeping, on
 *    threads that compete with the other process for the 2 cores, and the channel streams at
 *    ~0.85-0.9x TLS. With `node --single-threaded-gc` in both processes (command line only:
 *    NODE_OPTIONS refuses it, and v8.setFlagsFromString at run time crashes V8) the same code
 *    streams at ~1.7x TLS with one process per side, using less CPU per byte than TLS. The
 *    daemons run with it (DAEMON_V8_FLAGS in daemon.ts).
 *
 * 5. Flow control. send() returns socket.write's verdict: false means wait for 'drain'.
 *    Frames flow once a 'frame' listener is attached (as 'data' on a Readable); pause() stops
 *    reading the socket, so a slow consumer makes TCP push back on the sender (a dialed socket
 *    reads on up to RECEIVE_HIGH_WATER_BYTES first, as net's own buffer would, so a close is
 *    still seen). At most one frame plus one socket read is buffered per channel.
 */
import {
  createCipheriv,
  createDecipheriv,
  createSecretKey,
  hkdfSync,
  type KeyObject,
  randomBytes,
} from 'node:crypto'
import { channel as diagnosticsChannel } from 'node:diagnostics_channel'
import { EventEmitter } from 'node:events'
import net from 'node:net'
import { noise } from '@chainsafe/libp2p-noise'
import type { ConnectionEncrypter, PeerId, Upgrader } from '@libp2p/interface'
import { defaultLogger } from '@libp2p/logger'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { Packr } from 'msgpackr'
import type { Identity } from './identity.ts'

/** Largest frame plaintext in bytes; larger sends are refused and larger receives close. */
export const MAX_FRAME_BYTES = 4 * 1024 * 1024

/** Connect plus handshake time allowed by default, in milliseconds. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5000

const FRAME_HEADER_BYTES = 4
// Plaintext bytes per cipher.update() call when sealing a large part.
const SEND_SLICE_BYTES = 64 * 1024
const TAG_BYTES = 16
const KEY_MATERIAL_BYTES = 32
const CIPHER = 'chacha20-poly1305'
const INFO_DIALER_TO_LISTENER = 'tessera/1 dialer->listener'
const INFO_LISTENER_TO_DIALER = 'tessera/1 listener->dialer'
const MAX_SEQ = 2n ** 64n - 1n
// Noise messages each side receives: XX handshake messages (dialer 1, listener 2) + one hello.
const NOISE_MESSAGES_TO_DIALER = 2
const NOISE_MESSAGES_TO_LISTENER = 3
const HELLO_MAX_BYTES = 1024
// Bytes read ahead of noise during the handshake before the socket is paused (2 noise messages).
const HANDSHAKE_QUEUE_MAX_BYTES = 2 * (2 + 65535)
const HELLO_STRING_MAX = 256

/**
 * Diagnostics channel told about every switch from noise to raw frames, with
 * `{ remoteId, rawBytes }`: rawBytes arrived with or behind the last noise message and were
 * kept for the channel. Costs nothing without a subscriber.
 */
export const HANDOVER_DIAGNOSTICS_CHANNEL = 'tessera:channel:handover'
const handoverDiagnostics = diagnosticsChannel(HANDOVER_DIAGNOSTICS_CHANNEL)

/** What each side says about itself once the handshake has authenticated it. */
export interface Hello {
  /** Wire protocol version (PROTOCOL_VERSION); both sides must agree. */
  version: number
  /** Hash of the cluster map this process runs; both sides must agree. */
  mapHash: string
  role: 'node' | 'gateway'
}

/** Events of a {@link SecureChannel}. */
export interface SecureChannelEvents {
  /**
   * One received frame's plaintext, emitted only after its tag was verified. It is the
   * decipher's own output, never a view of socket memory: keep or transfer it freely.
   */
  frame: [plaintext: Buffer]
  /** The socket's write buffer emptied after a send() returned false. */
  drain: []
  /** Emitted once; `err` says why when the channel did not close cleanly. */
  close: [err?: Error]
}

/** An authenticated, encrypted, framed connection to one remote process. */
export interface SecureChannel extends EventEmitter<SecureChannelEvents> {
  /** The remote's identity id (libp2p peer id string), proven in the handshake. */
  readonly remoteId: string
  /** The remote's hello. */
  readonly remoteHello: Hello
  /** Bytes written but not yet handed to the kernel (socket.writableLength). */
  readonly bufferedBytes: number
  /** True once close() was called or the connection ended. */
  readonly closed: boolean
  /**
   * Seals and writes one frame made of these parts (at most MAX_FRAME_BYTES in all).
   * Returns false when the socket buffer is full: wait for 'drain' before sending more.
   * Throws CHANNEL_CLOSED on a closed channel and FRAME_TOO_LARGE for oversized frames.
   */
  send(parts: readonly Uint8Array[]): boolean
  /** Stops reading the socket: no 'frame' events until resume(). */
  pause(): void
  /** Reads the socket again (and starts the flow of frames if no listener did). */
  resume(): void
  /** Closes the connection: without `err` after flushing what was sent, with `err` at once. */
  close(err?: Error): void
}

/** Options of {@link connectSecure}. */
export interface ConnectSecureInit {
  host: string
  port: number
  identity: Identity
  /** Identity id the listener must prove; anything else fails with UNEXPECTED_PEER. */
  expectedRemoteId: string
  hello: Hello
  /** Time allowed for connect + handshake + hello exchange, in milliseconds (default 5000). */
  timeoutMs?: number
}

/** Options of {@link listenSecure}. */
export interface ListenSecureInit {
  identity: Identity
  hello: Hello
  /** Decides whether an authenticated remote may connect; returns a reason to refuse. */
  authorize(remoteId: string, hello: Hello): string | undefined
  /** Receives each accepted channel. */
  onChannel(channel: SecureChannel): void
  /** Told about each refused or failed connection; remoteId is undefined before it is known. */
  onRefused?(remoteId: string | undefined, reason: string): void
  /** Time allowed for handshake + hello exchange, in milliseconds (default 5000). */
  handshakeTimeoutMs?: number
}

/** Stable codes of every way a secure channel refuses, fails or closes. */
export const CHANNEL_ERROR_CODES = [
  'INVALID_ARGUMENT',
  'MAP_MISMATCH',
  'VERSION_MISMATCH',
  'REFUSED',
  'UNEXPECTED_PEER',
  'HANDSHAKE_TIMEOUT',
  'HANDSHAKE_FAILED',
  'FRAME_TOO_LARGE',
  'BAD_FRAME',
  'CHANNEL_CLOSED',
] as const
export type ChannelErrorCode = (typeof CHANNEL_ERROR_CODES)[number]

/** The error of secure channels; check `err.code`, never the class. */
export class ChannelError extends Error {
  static override name = 'ChannelError'
  readonly code: ChannelErrorCode

  constructor(code: ChannelErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'ChannelError'
    this.code = code
  }
}

/**
 * Connects to a listener and completes the handshake. Rejects with a ChannelError coded
 * UNEXPECTED_PEER, REFUSED, MAP_MISMATCH, VERSION_MISMATCH, HANDSHAKE_TIMEOUT or
 * HANDSHAKE_FAILED, or with the socket's own error (ECONNREFUSED, …) when the connect fails.
 */
export async function connectSecure(init: ConnectSecureInit): Promise<SecureChannel> {
  checkHello(init.hello)
  const expected = parseRemoteId(init.expectedRemoteId)
  const timeoutMs = init.timeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS
  const where = `listener ${init.expectedRemoteId} at ${init.host}:${init.port}`
  dialReadBuffer ??= Buffer.allocUnsafeSlow(DIAL_READ_BYTES)
  // Until the channel takes over, reads reach noise's transport as 'data' chunks of their own.
  const sink: ReadSink = {
    deliver: (bytes) => socket.emit('data', Buffer.from(bytes)),
  }
  const socket = net.connect({
    host: init.host,
    port: init.port,
    onread: {
      buffer: dialReadBuffer,
      callback: (n: number, buf: Uint8Array): boolean => {
        sink.deliver(buf.subarray(0, n))
        // Pausing is the sink's to do (socket.pause() stops the reads), not this answer's.
        return true
      },
    },
  })
  readSinks.set(socket, sink)
  socket.setNoDelay(true)
  const hs = new Handshake(socket, NOISE_MESSAGES_TO_DIALER, timeoutMs, where)
  let phase: 'connect' | 'noise' | 'hello' = 'connect'
  try {
    await hs.connected()
    phase = 'noise'
    const secured = await encrypterFor(init.identity).secureOutbound(hs.transport, {
      remotePeer: expected,
      skipStreamMuxerNegotiation: true,
      signal: hs.signal,
    })
    phase = 'hello'
    const keyMaterial = randomBytes(KEY_MATERIAL_BYTES)
    await secured.conn.sink(once(encodeHello({ ...init.hello, keyMaterial })))
    const reply = await readHello(secured.conn.source)
    if (reply === undefined) {
      throw new ChannelError(
        'REFUSED',
        `${where} closed the connection after the handshake: it does not accept this ` +
          `process's identity ${init.identity.id} (is it in that listener's cluster map?)`,
      )
    }
    if (reply.refused !== undefined) throw refusalError(reply, init.hello, where)
    if (reply.version !== init.hello.version || reply.mapHash !== init.hello.mapHash) {
      throw refusalError(
        {
          ...reply,
          refused: reply.version !== init.hello.version ? 'version mismatch' : 'map mismatch',
        },
        init.hello,
        where,
      )
    }
    await hs.written()
    const keys = sessionKeys(keyMaterial, reply.keyMaterial!)
    return hs.finish((leftover) => {
      return new Channel(socket, {
        sendKey: keys.dialerToListener,
        receiveKey: keys.listenerToDialer,
        remoteId: init.expectedRemoteId,
        remoteHello: publicHello(reply),
        leftover,
      })
    })
  } catch (err) {
    hs.abort()
    throw hs.failure ?? dialError(err, phase, where)
  }
}

/**
 * A net.Server that accepts secure channels; the caller calls server.listen(port, host).
 * Refused and failed connections are reported to onRefused and dropped.
 */
export function listenSecure(init: ListenSecureInit): net.Server {
  checkHello(init.hello)
  const encrypter = encrypterFor(init.identity)
  const timeoutMs = init.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS
  return net.createServer((socket) => {
    socket.setNoDelay(true)
    // A throwing onChannel is the caller's bug: it surfaces as an unhandled rejection.
    void accept(socket, encrypter, init, timeoutMs).then((ch) => ch && init.onChannel(ch))
  })
}

async function accept(
  socket: net.Socket,
  encrypter: ConnectionEncrypter,
  init: ListenSecureInit,
  timeoutMs: number,
): Promise<Channel | undefined> {
  const where = `connection from ${socket.remoteAddress}:${socket.remotePort}`
  const hs = new Handshake(socket, NOISE_MESSAGES_TO_LISTENER, timeoutMs, where)
  let remoteId: string | undefined
  const refuse = (reason: string): undefined => {
    hs.abort()
    init.onRefused?.(remoteId, reason)
    return undefined
  }
  try {
    const secured = await encrypter.secureInbound(hs.transport, {
      skipStreamMuxerNegotiation: true,
      signal: hs.signal,
    })
    remoteId = secured.remotePeer.toString()
    let hello: WireHello | undefined
    try {
      hello = await readHello(secured.conn.source)
    } catch (err) {
      return refuse(hs.failure?.message ?? `no valid hello: ${(err as Error).message}`)
    }
    if (hello === undefined) return refuse('closed before its hello')
    if (hello.refused !== undefined || hello.keyMaterial === undefined) {
      return refuse('malformed hello: a dialer cannot refuse')
    }
    let reason: string | undefined
    try {
      reason = init.authorize(remoteId, publicHello(hello))
    } catch (err) {
      reason = `authorize failed: ${(err as Error).message}`
    }
    if (reason !== undefined) return refuse(reason)
    const ours = init.hello
    const mismatch =
      hello.version !== ours.version
        ? 'version mismatch'
        : hello.mapHash !== ours.mapHash
          ? 'map mismatch'
          : undefined
    if (mismatch !== undefined) {
      // The dialer may know our values: it is authorized, only out of date.
      await secured.conn.sink(once(encodeHello({ ...ours, refused: mismatch })))
      await hs.written()
      hs.endGracefully()
      const detail =
        mismatch === 'version mismatch'
          ? `protocol version ${hello.version}, ours is ${ours.version}`
          : `cluster map ${hello.mapHash}, ours is ${ours.mapHash}`
      init.onRefused?.(remoteId, `${mismatch}: it runs ${detail}`)
      return undefined
    }
    const keyMaterial = randomBytes(KEY_MATERIAL_BYTES)
    await secured.conn.sink(once(encodeHello({ ...ours, keyMaterial })))
    await hs.written()
    const keys = sessionKeys(hello.keyMaterial, keyMaterial)
    const id = remoteId
    const remoteHello = publicHello(hello)
    return hs.finish(
      (leftover) =>
        new Channel(socket, {
          sendKey: keys.listenerToDialer,
          receiveKey: keys.dialerToListener,
          remoteId: id,
          remoteHello,
          leftover,
        }),
    )
  } catch (err) {
    return refuse(hs.failure?.message ?? `handshake failed: ${(err as Error).message}`)
  }
}

// ---------------------------------------------------------------------------------------------
// Handshake plumbing

/** A Uint8ArrayList as libp2p yields it, named by shape: the package is not our dependency. */
interface ByteList {
  subarray(): Uint8Array
}

/** Leftover state of the socket when the handshake hands it over. */
interface Handover {
  /** Bytes received after the last noise message: the first raw bytes. */
  chunks: Buffer[]
  /** The remote already ended its side. */
  ended: boolean
}

/**
 * The net.Socket as the duplex libp2p-noise reads and writes during the handshake. It yields
 * whole noise messages only, one per pull, at most `messages` of them (see the design notes).
 */
class NoiseTransport {
  /** Read by noise; noise later replaces it with the decrypting stream. */
  source: AsyncGenerator<Uint8Array>
  readonly #socket: net.Socket
  readonly #queue = new ChunkQueue()
  #left: number
  #ended = false
  #error: Error | undefined
  #detached = false
  #wake: (() => void) | undefined
  #writing: Promise<void> | undefined

  constructor(socket: net.Socket, messages: number) {
    this.#socket = socket
    this.#left = messages
    this.source = this.#messages()
    socket.on('data', this.#onData)
    socket.on('end', this.#onEnd)
    socket.on('close', this.#onClose)
  }

  /** Writes what noise sends; noise calls it once and feeds it for the whole session. */
  sink(source: AsyncIterable<Uint8Array | ByteList>): Promise<void> {
    this.#writing = (async () => {
      for await (const chunk of source) {
        if (this.#detached || this.#socket.destroyed) break
        this.#socket.write(chunk instanceof Uint8Array ? chunk : chunk.subarray())
      }
    })()
    return this.#writing
  }

  /** Settles when noise has stopped writing: its outgoing stream ended. */
  written(): Promise<void> {
    return this.#writing ?? Promise.resolve()
  }

  /** Marks the transport failed: noise's pending read throws `err`. */
  fail(err: Error): void {
    this.#error ??= err
    this.#wakeUp()
  }

  /** Takes the socket back: no more reads for noise; returns what arrived after its messages. */
  detach(): Handover {
    this.#detached = true
    this.#socket.pause()
    this.#socket.off('data', this.#onData)
    this.#socket.off('end', this.#onEnd)
    this.#socket.off('close', this.#onClose)
    this.#wakeUp()
    return { chunks: this.#queue.drain(), ended: this.#ended }
  }

  async *#messages(): AsyncGenerator<Uint8Array> {
    while (this.#left > 0 && !this.#detached) {
      const q = this.#queue
      if (q.length >= 2 && q.length >= 2 + q.peekUint(2)) {
        const size = q.peekUint(2)
        this.#left--
        // A copy: noise decrypts in place, and the queue's chunks may hold our raw bytes too.
        const message = q.take(2 + size)
        if (q.length < HANDSHAKE_QUEUE_MAX_BYTES && !this.#detached) this.#socket.resume()
        yield message
        continue
      }
      if (this.#error !== undefined) throw this.#error
      if (this.#ended) return
      await new Promise<void>((resolve) => {
        this.#wake = resolve
      })
    }
  }

  #wakeUp(): void {
    const wake = this.#wake
    this.#wake = undefined
    wake?.()
  }

  readonly #onData = (chunk: Buffer): void => {
    this.#queue.push(chunk)
    // Bounded before authentication: a peer cannot make us queue more than this; the pause
    // never holds back a message noise needs, since messages are far smaller.
    if (this.#queue.length >= HANDSHAKE_QUEUE_MAX_BYTES) this.#socket.pause()
    this.#wakeUp()
  }

  readonly #onEnd = (): void => {
    this.#ended = true
    this.#wakeUp()
  }

  readonly #onClose = (): void => {
    this.fail(new Error('connection closed'))
  }
}

/** One connection's handshake: its transport, its deadline and the first fatal reason. */
class Handshake {
  readonly transport: NoiseTransport
  readonly signal: AbortSignal
  /** Set when the deadline passed: the error to report whatever else failed because of it. */
  failure: ChannelError | undefined
  readonly #socket: net.Socket
  readonly #abort = new AbortController()
  readonly #timer: NodeJS.Timeout

  constructor(socket: net.Socket, messages: number, timeoutMs: number, where: string) {
    this.#socket = socket
    this.transport = new NoiseTransport(socket, messages)
    this.signal = this.#abort.signal
    socket.on('error', this.#onError)
    this.#timer = setTimeout(() => {
      this.failure ??= new ChannelError(
        'HANDSHAKE_TIMEOUT',
        `${where}: connect and handshake took longer than ${timeoutMs} ms`,
      )
      this.abort()
    }, timeoutMs)
  }

  /** Resolves once the TCP connection is up (dialer only). */
  connected(): Promise<void> {
    return new Promise((resolve, reject) => {
      const s = this.#socket
      if (!s.connecting) {
        resolve()
        return
      }
      const done = (err?: Error): void => {
        s.off('connect', onConnect)
        s.off('error', onError)
        s.off('close', onClose)
        if (err === undefined) resolve()
        else reject(err)
      }
      const onConnect = (): void => done()
      const onError = (err: Error): void => done(err)
      // destroy() by the deadline emits 'close' without 'error'.
      const onClose = (): void => done(new Error('connection closed while connecting'))
      s.on('connect', onConnect)
      s.on('error', onError)
      s.on('close', onClose)
    })
  }

  /** Resolves when every noise message this side sent is on the socket. */
  written(): Promise<void> {
    return this.transport.written()
  }

  /** Fails the handshake: destroys the socket and ends noise's reads. */
  abort(): void {
    clearTimeout(this.#timer)
    const err = this.failure ?? new Error('handshake aborted')
    this.transport.fail(err)
    this.#abort.abort(err)
    this.#socket.destroy()
  }

  /** Closes after what was written (a refusal reply) has been flushed. */
  endGracefully(): void {
    clearTimeout(this.#timer)
    this.transport.detach()
    this.#socket.destroySoon()
  }

  /** Hands the socket from noise to the channel `make` builds, in one synchronous step. */
  finish<T>(make: (handover: Handover) => T): T {
    clearTimeout(this.#timer)
    const handover = this.transport.detach()
    const channel = make(handover)
    // The channel has its own 'error' listener now.
    this.#socket.off('error', this.#onError)
    return channel
  }

  // The error reaches noise's pending read, and so the caller, who knows the phase.
  readonly #onError = (err: Error): void => {
    this.transport.fail(err)
  }
}

const encrypters = new WeakMap<Identity, ConnectionEncrypter>()

// One noise instance per identity: it holds the static X25519 key, which may be reused.
function encrypterFor(identity: Identity): ConnectionEncrypter {
  let e = encrypters.get(identity)
  if (e === undefined) {
    e = noise()({
      privateKey: identity.privateKey,
      peerId: peerIdFromPrivateKey(identity.privateKey),
      logger: defaultLogger(),
      // Only consulted for early muxer negotiation, which every call here skips
      // (skipStreamMuxerNegotiation); a stub avoids building a libp2p upgrader.
      upgrader: { getStreamMuxers: () => new Map() } as unknown as Upgrader,
    })
    encrypters.set(identity, e)
  }
  return e
}

function parseRemoteId(id: string): PeerId {
  let peer: PeerId
  try {
    peer = peerIdFromString(id)
  } catch (err) {
    throw new ChannelError('INVALID_ARGUMENT', `expectedRemoteId ${id} is not a peer id`, {
      cause: err,
    })
  }
  if (peer.type !== 'Ed25519') {
    throw new ChannelError(
      'INVALID_ARGUMENT',
      `expectedRemoteId ${id} is a ${peer.type} peer id: Tessera identities are Ed25519`,
    )
  }
  return peer
}

function dialError(err: unknown, phase: 'connect' | 'noise' | 'hello', where: string): Error {
  if (err instanceof ChannelError) return err
  const e = err instanceof Error ? err : new Error(String(err))
  if (phase === 'connect') return e
  if (phase === 'noise' && e.name === 'UnexpectedPeerError') {
    return new ChannelError(
      'UNEXPECTED_PEER',
      `${where} did not prove the expected identity: ${e.message}`,
      { cause: e },
    )
  }
  if (phase === 'hello') {
    return new ChannelError(
      'REFUSED',
      `${where} dropped the connection after the handshake (${e.message}): it does not ` +
        'accept this identity (is it in that listener’s cluster map?)',
      { cause: e },
    )
  }
  return new ChannelError('HANDSHAKE_FAILED', `${where}: handshake failed: ${e.message}`, {
    cause: e,
  })
}

// ---------------------------------------------------------------------------------------------
// Hello

/** The hello as it travels: with the key material, or a refusal instead. */
interface WireHello extends Hello {
  keyMaterial?: Buffer
  refused?: string
}

const packr = new Packr({ useRecords: false, mapsAsObjects: true })

function encodeHello(h: WireHello): Uint8Array {
  const msg: Record<string, unknown> = { version: h.version, mapHash: h.mapHash, role: h.role }
  if (h.keyMaterial !== undefined) msg.keyMaterial = h.keyMaterial
  if (h.refused !== undefined) msg.refused = h.refused
  return packr.pack(msg)
}

async function readHello(
  source: AsyncGenerator<Uint8Array | ByteList>,
): Promise<WireHello | undefined> {
  const r = await source.next()
  // Noise is done with this stream: end its pipeline (our transport yields no more anyway).
  source.return(undefined).catch(() => {})
  if (r.done === true) return undefined
  const bytes = r.value instanceof Uint8Array ? r.value : r.value.subarray()
  if (bytes.byteLength > HELLO_MAX_BYTES) throw new Error(`${bytes.byteLength} bytes`)
  const m: unknown = packr.unpack(bytes)
  if (typeof m !== 'object' || m === null) throw new Error('not a map')
  const { version, mapHash, role, keyMaterial, refused } = m as Record<string, unknown>
  if (!Number.isSafeInteger(version)) throw new Error('no version')
  if (typeof mapHash !== 'string' || mapHash.length > HELLO_STRING_MAX) {
    throw new Error('no map hash')
  }
  if (role !== 'node' && role !== 'gateway') throw new Error('no role')
  const hello: WireHello = { version: version as number, mapHash, role }
  if (refused !== undefined) {
    if (typeof refused !== 'string' || refused.length > HELLO_STRING_MAX) {
      throw new Error('bad refusal')
    }
    hello.refused = refused
  } else {
    if (!(keyMaterial instanceof Uint8Array) || keyMaterial.byteLength !== KEY_MATERIAL_BYTES) {
      throw new Error('no key material')
    }
    hello.keyMaterial = Buffer.from(keyMaterial)
  }
  return hello
}

function publicHello(h: WireHello): Hello {
  return Object.freeze({ version: h.version, mapHash: h.mapHash, role: h.role })
}

function checkHello(h: Hello): void {
  if (!Number.isSafeInteger(h.version) || h.version < 0) {
    throw new ChannelError('INVALID_ARGUMENT', `hello.version must be an integer, got ${h.version}`)
  }
  if (typeof h.mapHash !== 'string' || h.mapHash.length > HELLO_STRING_MAX) {
    throw new ChannelError('INVALID_ARGUMENT', `hello.mapHash must be a string of ≤ 256 chars`)
  }
  if (h.role !== 'node' && h.role !== 'gateway') {
    throw new ChannelError('INVALID_ARGUMENT', `hello.role must be 'node' or 'gateway'`)
  }
}

function refusalError(reply: WireHello, ours: Hello, where: string): ChannelError {
  if (reply.refused === 'map mismatch') {
    return new ChannelError(
      'MAP_MISMATCH',
      `${where} runs cluster map ${reply.mapHash}, this process runs ${ours.mapHash}: ` +
        'deploy the same cluster.yaml to every node and gateway',
    )
  }
  if (reply.refused === 'version mismatch') {
    return new ChannelError(
      'VERSION_MISMATCH',
      `${where} speaks protocol version ${reply.version}, this process ${ours.version}: ` +
        'upgrade the older side',
    )
  }
  return new ChannelError('REFUSED', `${where} refused the connection: ${reply.refused}`)
}

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes
}

function sessionKeys(
  dialerMaterial: Uint8Array,
  listenerMaterial: Uint8Array,
): { dialerToListener: KeyObject; listenerToDialer: KeyObject } {
  const ikm = Buffer.concat([dialerMaterial, listenerMaterial])
  const derive = (info: string): KeyObject => {
    const raw = Buffer.from(hkdfSync('sha256', ikm, Buffer.alloc(0), info, 32))
    const key = createSecretKey(raw)
    raw.fill(0)
    return key
  }
  const keys = {
    dialerToListener: derive(INFO_DIALER_TO_LISTENER),
    listenerToDialer: derive(INFO_LISTENER_TO_DIALER),
  }
  ikm.fill(0)
  dialerMaterial.fill(0)
  listenerMaterial.fill(0)
  return keys
}

// ---------------------------------------------------------------------------------------------
// Raw data path

/** Socket chunks of the handshake, kept as they came; bytes are taken from the front. */
class ChunkQueue {
  #chunks: Buffer[] = []
  /** Bytes queued. */
  length = 0

  push(chunk: Buffer): void {
    if (chunk.length === 0) return
    this.#chunks.push(chunk)
    this.length += chunk.length
  }

  /** The unsigned big-endian integer in the first `bytes` (≤ 4) bytes; needs that many. */
  peekUint(bytes: number): number {
    const first = this.#chunks[0]!
    if (first.length >= bytes) return first.readUIntBE(0, bytes)
    let v = 0
    let n = 0
    for (const c of this.#chunks) {
      for (let i = 0; i < c.length && n < bytes; i++, n++) v = v * 256 + c[i]!
      if (n === bytes) break
    }
    return v
  }

  /** Removes `n` bytes from the front, passing them to `fn` as views, chunk by chunk. */
  consume(n: number, fn: (piece: Buffer) => void): void {
    this.length -= n
    while (n > 0) {
      const c = this.#chunks[0]!
      if (c.length <= n) {
        this.#chunks.shift()
        fn(c)
        n -= c.length
      } else {
        fn(c.subarray(0, n))
        this.#chunks[0] = c.subarray(n)
        n = 0
      }
    }
  }

  /** Removes `n` bytes from the front into a new buffer. */
  take(n: number): Buffer {
    const out = Buffer.allocUnsafe(n)
    let at = 0
    this.consume(n, (piece) => {
      out.set(piece, at)
      at += piece.length
    })
    return out
  }

  /** Removes and returns everything. */
  drain(): Buffer[] {
    const all = this.#chunks
    this.#chunks = []
    this.length = 0
    return all
  }
}

interface ChannelInit {
  sendKey: KeyObject
  receiveKey: KeyObject
  remoteId: string
  remoteHello: Hello
  leftover: Handover
}

const EMPTY = Buffer.alloc(0)

/** Bytes a dialed channel reads ahead of a paused (or not yet started) consumer. */
const RECEIVE_HIGH_WATER_BYTES = 64 * 1024

/** Bytes a receive buffer starts with; it grows to the largest frame received. */
const RECEIVE_BUFFER_MIN_BYTES = 256 * 1024

/**
 * The received bytes of one channel, contiguous: every socket chunk is copied in as it
 * arrives, and a frame is decrypted in place when all of it is there. Grows to hold the
 * largest frame seen (at most MAX_FRAME_BYTES plus a socket read), and is reused.
 */
class ReceiveBuffer {
  #buf: Buffer = EMPTY
  #start = 0
  #end = 0

  /** Bytes held. */
  get length(): number {
    return this.#end - this.#start
  }

  append(bytes: Uint8Array): void {
    if (bytes.length === 0) return
    this.#room(bytes.length)
    this.#buf.set(bytes, this.#end)
    this.#end += bytes.length
  }

  /** Makes room for `total` bytes from the front, so that a frame about to come fits whole. */
  reserve(total: number): void {
    if (this.#start + total > this.#buf.length) this.#room(total - this.length)
  }

  /** The unsigned big-endian integer in the first 4 bytes; needs that many. */
  peekUint32(): number {
    return this.#buf.readUInt32BE(this.#start)
  }

  /** `n` bytes from `offset` past the front, as a view (valid until the next append). */
  view(offset: number, n: number): Buffer {
    return this.#buf.subarray(this.#start + offset, this.#start + offset + n)
  }

  skip(n: number): void {
    this.#start += n
    if (this.#start === this.#end) {
      this.#start = 0
      this.#end = 0
    }
  }

  clear(): void {
    this.#buf = EMPTY
    this.#start = 0
    this.#end = 0
  }

  /** Room for `more` bytes after the end: moves the held bytes to the front, or grows. */
  #room(more: number): void {
    if (this.#end + more <= this.#buf.length) return
    const held = this.length
    if (held + more <= this.#buf.length) {
      this.#buf.copyWithin(0, this.#start, this.#end)
    } else {
      const next = Buffer.allocUnsafeSlow(
        Math.max(held + more, 2 * this.#buf.length, RECEIVE_BUFFER_MIN_BYTES),
      )
      this.#buf.copy(next, 0, this.#start, this.#end)
      this.#buf = next
    }
    this.#start = 0
    this.#end = held
  }
}

/**
 * Where a dialed socket's bytes go (see connectSecure): noise's transport during the
 * handshake, the channel after it. Every receiver copies what it is given at once.
 */
interface ReadSink {
  deliver: (bytes: Uint8Array) => void
}
const readSinks = new WeakMap<net.Socket, ReadSink>()

// Dialed sockets read into this one buffer (net's `onread`), shared by the process: each read
// is handed to its socket's sink, which copies it, in one synchronous step. So no buffer is
// allocated per read, as net does for every 'data' chunk.
const DIAL_READ_BYTES = 64 * 1024
let dialReadBuffer: Buffer | undefined

function nonce(seq: bigint): Buffer {
  const n = Buffer.alloc(12)
  n.writeBigUInt64BE(seq, 4)
  return n
}

class Channel extends EventEmitter<SecureChannelEvents> implements SecureChannel {
  readonly remoteId: string
  readonly remoteHello: Hello
  readonly #socket: net.Socket
  readonly #sendKey: KeyObject
  readonly #receiveKey: KeyObject
  #sendSeq = 0n
  #receiveSeq = 0n
  readonly #inbox = new ReceiveBuffer()
  /** Plaintext length of the frame being received; -1 while waiting for its header. */
  #frameBytes = -1
  #flowing = false
  #paused = false
  #parsing = false
  #remoteEnded = false
  #closed = false
  #corked = false
  #closeError: Error | undefined
  #closeEmitted = false
  /** The socket reads into the shared dial buffer (net's onread): see connectSecure. */
  #ownReads = false
  /** The socket closed after a clean end while received frames wait for the consumer. */
  #socketGone = false

  constructor(socket: net.Socket, init: ChannelInit) {
    super()
    this.remoteId = init.remoteId
    this.remoteHello = init.remoteHello
    this.#socket = socket
    this.#sendKey = init.sendKey
    this.#receiveKey = init.receiveKey
    for (const c of init.leftover.chunks) this.#inbox.append(c)
    if (handoverDiagnostics.hasSubscribers) {
      handoverDiagnostics.publish({ remoteId: this.remoteId, rawBytes: this.#inbox.length })
    }
    this.#remoteEnded = init.leftover.ended
    // The socket is paused (the handshake left it so); a 'data' listener does not resume it.
    const sink = readSinks.get(socket)
    this.#ownReads = sink !== undefined
    if (sink !== undefined) {
      sink.deliver = this.#onData
      // Reads go on (into the receive buffer, bounded) before a 'frame' listener comes.
      socket.resume()
    } else socket.on('data', this.#onData)
    socket.on('end', this.#onEnd)
    socket.on('drain', this.#onDrain)
    socket.on('error', this.#onError)
    socket.on('close', this.#onClose)
    // 'newListener' is EventEmitter's own event, outside SecureChannelEvents.
    ;(this as EventEmitter).on('newListener', this.#onNewListener)
    if (socket.destroyed) process.nextTick(this.#onClose)
    else if (this.#remoteEnded) process.nextTick(() => this.#parse())
  }

  get bufferedBytes(): number {
    return this.#socket.writableLength
  }

  get closed(): boolean {
    return this.#closed
  }

  send(parts: readonly Uint8Array[]): boolean {
    if (this.#closed) {
      throw new ChannelError('CHANNEL_CLOSED', `channel to ${this.remoteId} is closed`, {
        cause: this.#closeError,
      })
    }
    let bytes = 0
    for (const p of parts) bytes += p.byteLength
    if (bytes > MAX_FRAME_BYTES) {
      throw new ChannelError(
        'FRAME_TOO_LARGE',
        `frame of ${bytes} bytes to ${this.remoteId}: frames carry at most ${MAX_FRAME_BYTES}`,
      )
    }
    if (this.#sendSeq > MAX_SEQ) {
      const err = new ChannelError('CHANNEL_CLOSED', 'send nonces exhausted: reconnect')
      this.close(err)
      throw err
    }
    const cipher = createCipheriv(CIPHER, this.#sendKey, nonce(this.#sendSeq++), {
      authTagLength: TAG_BYTES,
    })
    const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES)
    header.writeUInt32BE(bytes, 0)
    const s = this.#socket
    // One cork per tick: every frame sent in this tick (many small RPCs answer together)
    // leaves in one writev, a syscall saved per frame.
    if (!this.#corked) {
      this.#corked = true
      s.cork()
      process.nextTick(() => {
        this.#corked = false
        s.uncork()
      })
    }
    s.write(header)
    for (const p of parts) {
      // Sealed in slices: each output is a small fresh buffer that stays in cache.
      for (let at = 0; at < p.byteLength; at += SEND_SLICE_BYTES) {
        s.write(
          cipher.update(
            at === 0 && p.byteLength <= SEND_SLICE_BYTES
              ? p
              : p.subarray(at, at + SEND_SLICE_BYTES),
          ),
        )
      }
    }
    cipher.final()
    return s.write(cipher.getAuthTag())
  }

  pause(): void {
    this.#paused = true
    // A dialed socket keeps reading up to RECEIVE_HIGH_WATER_BYTES (see #onData), as a net
    // socket's own buffer does, so that a close from the remote is still noticed.
    if (!this.#ownReads) this.#socket.pause()
  }

  resume(): void {
    this.#paused = false
    this.#flowing = true
    this.#flow()
  }

  close(err?: Error): void {
    if (this.#closed) return
    this.#closed = true
    this.#closeError = err
    this.#inbox.clear()
    if (err === undefined) this.#socket.destroySoon()
    else this.#socket.destroy()
    // A socket already gone emits no second 'close': the channel's own comes from here.
    if (this.#socketGone) this.#onClose()
  }

  #flow(): void {
    if (!this.#flowing || this.#paused || this.#closed) return
    this.#parse()
    if (!this.#paused && !this.#closed) this.#socket.resume()
  }

  #parse(): void {
    // A 'frame' listener may pause, resume or close: the outer loop carries on by itself.
    if (this.#parsing) return
    this.#parsing = true
    try {
      const inbox = this.#inbox
      while (this.#flowing && !this.#paused && !this.#closed) {
        if (this.#frameBytes < 0) {
          if (inbox.length < FRAME_HEADER_BYTES) break
          const bytes = inbox.peekUint32()
          if (bytes > MAX_FRAME_BYTES) {
            this.close(
              new ChannelError(
                'FRAME_TOO_LARGE',
                `${this.remoteId} sent a frame of ${bytes} bytes, more than ${MAX_FRAME_BYTES}`,
              ),
            )
            return
          }
          inbox.skip(FRAME_HEADER_BYTES)
          inbox.reserve(bytes + TAG_BYTES)
          this.#frameBytes = bytes
        }
        if (inbox.length < this.#frameBytes + TAG_BYTES) break
        const plaintext = this.#open(this.#frameBytes)
        this.#frameBytes = -1
        if (plaintext === undefined) return
        this.emit('frame', plaintext)
      }
      if (this.#remoteEnded && !this.#closed) this.#onRemoteEnded()
    } finally {
      this.#parsing = false
    }
  }

  #onRemoteEnded(): void {
    if (this.#frameBytes < 0 && this.#inbox.length === 0) {
      this.close()
    } else if (this.#flowing && !this.#paused) {
      // Every whole frame was delivered: what is left is a cut frame.
      this.close(
        new ChannelError('BAD_FRAME', `${this.remoteId} closed the connection inside a frame`),
      )
    }
  }

  /** Decrypts and verifies the whole frame at the front of the inbox; undefined = closed. */
  #open(bytes: number): Buffer | undefined {
    if (this.#receiveSeq > MAX_SEQ) {
      this.close(new ChannelError('CHANNEL_CLOSED', 'receive nonces exhausted: reconnect'))
      return undefined
    }
    const seq = this.#receiveSeq++
    const decipher = createDecipheriv(CIPHER, this.#receiveKey, nonce(seq), {
      authTagLength: TAG_BYTES,
    })
    const inbox = this.#inbox
    // One update over the frame where it lies: the plaintext comes out as one buffer of its
    // own, and nothing else is allocated per byte (see the design notes).
    const plaintext = bytes === 0 ? EMPTY : decipher.update(inbox.view(0, bytes))
    decipher.setAuthTag(inbox.view(bytes, TAG_BYTES))
    inbox.skip(bytes + TAG_BYTES)
    try {
      decipher.final()
      if (plaintext.length !== bytes) throw new Error('short plaintext')
    } catch {
      this.close(
        new ChannelError(
          'BAD_FRAME',
          `frame ${seq} from ${this.remoteId} failed authentication: the connection was ` +
            'tampered with or corrupted',
        ),
      )
      return undefined
    }
    return plaintext
  }

  readonly #onNewListener = (event: string | symbol): void => {
    if (event !== 'frame' || this.#flowing) return
    this.#flowing = true
    // The listener is added after this event: start on the next tick.
    process.nextTick(() => this.#flow())
  }

  readonly #onData = (chunk: Uint8Array): void => {
    // After close() the socket may still deliver what was in flight: drop it.
    if (this.#closed) return
    this.#inbox.append(chunk)
    this.#parse()
    if (
      this.#ownReads &&
      (!this.#flowing || this.#paused) &&
      !this.#closed &&
      this.#inbox.length >= RECEIVE_HIGH_WATER_BYTES
    ) {
      this.#socket.pause()
    }
  }

  readonly #onEnd = (): void => {
    this.#remoteEnded = true
    this.#parse()
  }

  readonly #onDrain = (): void => {
    this.emit('drain')
  }

  readonly #onError = (err: Error): void => {
    if (this.#closed) return
    this.close(
      new ChannelError('CHANNEL_CLOSED', `connection to ${this.remoteId} failed: ${err.message}`, {
        cause: err,
      }),
    )
  }

  readonly #onClose = (): void => {
    if (this.#closeEmitted) return
    if (!this.#closed && this.#remoteEnded && !this.#socket.errored && this.#inbox.length > 0) {
      // The remote ended cleanly with frames not yet taken (the consumer is paused or has not
      // started): they are delivered first, and the channel closes after the last (#parse).
      this.#socketGone = true
      return
    }
    this.#closeEmitted = true
    if (!this.#closed) {
      this.#closed = true
      this.#closeError ??= this.#socket.errored
        ? new ChannelError('CHANNEL_CLOSED', `connection to ${this.remoteId} was lost`)
        : undefined
    }
    this.#inbox.clear()
    this.emit('close', this.#closeError)
  }
}
