/**
 * Connections from this process to its peers (a gateway to the nodes, a node to other nodes
 * for healing): a few secure channels per peer, opened on first use, the least busy one
 * chosen for each call, a closed one replaced on the next call. A peer that cannot be reached
 * fails the call fast with NODE_UNAVAILABLE, and is not dialled again for a short back-off
 * (which may double with each failed dial, up to maxBackoffMs: by default it does not, so a
 * restarted node is used again within a second). Once the back-off is over, the next call
 * probes the peer: it waits PROBE_WAIT_MS at most on the dial, and while the dial goes on
 * (connectTimeoutMs against a silent peer: frozen, or behind a cut link whose SYNs go
 * unanswered) every other call fails at once. So a dead node, or a silent one (its channels
 * close after rpc.ts's DEAD_AFTER_MS), costs its callers one timeout, not one per call, nor a
 * connect timeout per back-off.
 */
import { StoreError } from './errors.ts'
import type { Identity } from './identity.ts'
import { type CallOptions, RpcClient, type RpcDef } from './rpc.ts'
import { connectSecure, type Hello } from './secure-channel.ts'

/** How long calls wait on a dial that probes a peer known to be down. */
const PROBE_WAIT_MS = 250

export interface Peer {
  /** The peer's public id, checked during the handshake. */
  id: string
  /** host:port */
  address: string
}

export interface PeerPoolInit {
  identity: Identity
  hello: Hello
  /** Channels per peer; several beat one multiplexed pipe (design §6). Default 2. */
  connectionsPerPeer?: number
  /** Connect plus handshake; default 3000 ms. */
  connectTimeoutMs?: number
  /** After a failed dial, how long calls to that peer fail at once; default 1000 ms. */
  backoffMs?: number
  /** The longest back-off after repeated failures; default backoffMs (no growth). */
  maxBackoffMs?: number
  /** Liveness of each channel (rpc.ts defaults). */
  keepaliveMs?: number
  deadAfterMs?: number
}

interface PeerState {
  clients: RpcClient[]
  dialing: Promise<RpcClient> | undefined
  downUntil: number
  lastError: StoreError | undefined
  /** Dials failed (or channels gone silent) since the last good dial. */
  failures: number
}

export class PeerPool {
  #init: Required<Omit<PeerPoolInit, 'keepaliveMs' | 'deadAfterMs'>> &
    Pick<PeerPoolInit, 'keepaliveMs' | 'deadAfterMs'>
  #peers = new Map<string, PeerState>()
  #closed = false

  constructor(init: PeerPoolInit) {
    const backoffMs = init.backoffMs ?? 1000
    this.#init = {
      connectionsPerPeer: 2,
      connectTimeoutMs: 3000,
      maxBackoffMs: backoffMs,
      ...init,
      backoffMs,
    }
  }

  /** A connected client for the peer: an idle existing one, or a new one up to the limit. */
  async client(peer: Peer): Promise<RpcClient> {
    if (this.#closed) throw new StoreError('CHANNEL_CLOSED', 'the peer pool is closed')
    let st = this.#peers.get(peer.id)
    if (st === undefined) {
      st = { clients: [], dialing: undefined, downUntil: 0, lastError: undefined, failures: 0 }
      this.#peers.set(peer.id, st)
    }
    st.clients = st.clients.filter((c) => !c.closed)
    const idle = st.clients.find((c) => c.inFlight === 0)
    if (idle) return idle
    if (st.clients.length < this.#init.connectionsPerPeer) {
      if (st.clients.length === 0 && st.failures > 0) {
        // A peer known to be down: fail at once, within the back-off and while a probe is on.
        if (Date.now() < st.downUntil || st.dialing !== undefined) throw st.lastError!
        // The back-off is over: this call probes it, and waits only as long as a dial to a
        // live peer takes (a restarted node is used at once). A silent peer's dial takes
        // connectTimeoutMs; it goes on in the background, and no call waits it out.
        st.dialing = this.#dial(peer, st)
        st.dialing.catch(() => {})
        return this.#briefly(st.dialing, st.lastError!)
      }
      if (st.dialing === undefined) {
        st.dialing = this.#dial(peer, st)
        // A dial for extra capacity runs in the background: its failure (the peer just died)
        // is recorded in the back-off state and must not become an unhandled rejection.
        st.dialing.catch(() => {})
      }
      if (st.clients.length === 0) return st.dialing
    }
    return st.clients.reduce((a, b) => (b.inFlight < a.inFlight ? b : a))
  }

  async #dial(peer: Peer, st: PeerState): Promise<RpcClient> {
    try {
      const [host, port] = splitHostPort(peer.address)
      const ch = await connectSecure({
        host,
        port,
        identity: this.#init.identity,
        expectedRemoteId: peer.id,
        hello: this.#init.hello,
        timeoutMs: this.#init.connectTimeoutMs,
      })
      const c = new RpcClient(ch, {
        ...(this.#init.keepaliveMs !== undefined ? { keepaliveMs: this.#init.keepaliveMs } : {}),
        ...(this.#init.deadAfterMs !== undefined ? { deadAfterMs: this.#init.deadAfterMs } : {}),
      })
      st.failures = 0
      ch.on('close', () => {
        // A channel that went silent means the peer is down until a dial proves otherwise.
        const why = c.closeError
        if (why?.code === 'NODE_UNAVAILABLE') this.#markDown(st, why)
      })
      st.clients.push(c)
      return c
    } catch (err) {
      const e = err as { code?: string; message?: string }
      // Refusals that will not fix themselves keep their own code; the rest mean "down".
      const fatal =
        e.code === 'MAP_MISMATCH' || e.code === 'VERSION_MISMATCH' || e.code === 'UNEXPECTED_PEER'
      const se = new StoreError(
        'NODE_UNAVAILABLE',
        `cannot reach ${peer.id} at ${peer.address}: ${e.message ?? String(err)}`,
        { peer: peer.id, address: peer.address, cause: fatal ? e.code : undefined },
        err,
      )
      this.#markDown(st, se)
      throw se
    } finally {
      st.dialing = undefined
    }
  }

  #briefly(dialing: Promise<RpcClient>, err: StoreError): Promise<RpcClient> {
    let timer: NodeJS.Timeout | undefined
    const giveUp = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(err), PROBE_WAIT_MS)
    })
    return Promise.race([dialing, giveUp]).finally(() => clearTimeout(timer))
  }

  #markDown(st: PeerState, err: StoreError): void {
    st.failures++
    st.lastError = err
    const backoff = Math.min(
      this.#init.maxBackoffMs,
      this.#init.backoffMs * 2 ** Math.min(st.failures - 1, 16),
    )
    st.downUntil = Math.max(st.downUntil, Date.now() + backoff)
  }

  /**
   * How long the peer has sent nothing on any open channel (the least of their silences); 0
   * with none open (nothing is known, and a dial settles it).
   */
  silentMs(peerId: string): number {
    const st = this.#peers.get(peerId)
    let least: number | undefined
    for (const c of st?.clients ?? []) {
      if (c.closed) continue
      const s = c.silentMs
      if (least === undefined || s < least) least = s
    }
    return least ?? 0
  }

  /** Calls an RPC on a peer. */
  async call<Req, Res>(
    peer: Peer,
    def: RpcDef<Req, Res>,
    req: Req,
    opts?: CallOptions,
  ): Promise<Res> {
    return (await this.client(peer)).call(def, req, opts)
  }

  /** Calls an RPC that answers with a body. */
  async callStream<Req, Res>(
    peer: Peer,
    def: RpcDef<Req, Res>,
    req: Req,
    opts?: CallOptions,
  ): Promise<{ res: Res; body: AsyncIterable<Uint8Array> }> {
    return (await this.client(peer)).callStream(def, req, opts)
  }

  /** Closes every channel. */
  close(): void {
    this.#closed = true
    for (const st of this.#peers.values()) for (const c of st.clients) c.channel.close()
    this.#peers.clear()
  }
}

function splitHostPort(address: string): [string, number] {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(address)
  if (m === null) throw new StoreError('INVALID_REQUEST', `address ${address} is not host:port`)
  return [m[1]!, Number(m[2])]
}
