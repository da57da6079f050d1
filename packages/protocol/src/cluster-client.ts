/**
 * A member's view of the cluster, shared by gateways and by nodes (healing, lifecycle): the map
 * and its layout, secure connections to every node (a {@link PeerPool}), and calls addressed
 * to drives rather than nodes. Also the quorum rules of design §4 and the pool a new object
 * goes to.
 */
import type { BufferPool } from './buffer-pool.ts'
import type { ClusterMap } from './cluster-map.ts'
import { StoreError } from './errors.ts'
import type { Identity } from './identity.ts'
import { type DriveRef, GetDriveInfo } from './messages.ts'
import { PeerPool } from './peer-pool.ts'
import {
  type ClusterLayout,
  computeLayout,
  type DriveSlot,
  type ErasureSet,
  placeObject,
} from './placement.ts'
import type { RpcDef } from './rpc.ts'
import { PROTOCOL_VERSION } from './version.ts'

/**
 * Deadline of a call that streams a body: the whole transfer must fit in it, and a client may
 * upload or download slowly, so it is long; a client that goes away cancels the call instead.
 */
export const STREAM_DEADLINE_MS = 3_600_000

/**
 * How long a read waits for a drive that has not answered once the answers in hand would
 * decide it: far beyond a healthy drive's answer (a few ms, tens under heavy load), far below
 * the 5 s after which a silent node's channel is declared dead (rpc.ts's DEAD_AFTER_MS).
 */
export const HEDGE_MS = 250

export interface ClusterInit {
  map: ClusterMap
  mapHash: string
  identity: Identity
  /** Who this member is in the hello: a gateway, or a node calling its peers. Default gateway. */
  role?: 'gateway' | 'node'
  /** Deadline of one RPC to a node that carries no body; default 10 s. */
  callTimeoutMs?: number
  /** Secure channels per node; default 4. */
  connectionsPerNode?: number
}

/** Where an object lives: its set and shard distribution inside one pool. */
export interface Placement {
  pool: number
  set: ErasureSet
  distribution: number[]
}

/** Result of a call to one drive. */
export type DriveResult<T> =
  | { drive: DriveSlot; ok: true; value: T }
  | { drive: DriveSlot; ok: false; error: StoreError }

/** What {@link Cluster.callQuorum} knows when the outcome is decided, and what comes later. */
export interface QuorumResults<T> {
  /** The calls that had ended. */
  settled: DriveResult<T>[]
  /** The drives whose calls had not ended. */
  pending: DriveSlot[]
  /** The results of the pending calls, once all of them have ended; never rejects. */
  rest: Promise<DriveResult<T>[]>
}

export class Cluster {
  readonly map: ClusterMap
  readonly layout: ClusterLayout
  readonly peers: PeerPool
  /** k: drives whose shards suffice to read, and whose records must agree. */
  readonly readQuorum: number
  /** k, plus one when k = m, so two disjoint write quorums cannot both succeed. */
  readonly writeQuorum: number
  #addresses = new Map<string, { id: string; address: string }>()
  #timeoutMs: number
  #freeByPool: number[] = []
  #freeAt = 0
  #refreshing: Promise<void> | undefined

  constructor(init: ClusterInit) {
    this.map = init.map
    this.layout = computeLayout(init.map)
    const { data: k, parity: m } = init.map.erasure
    this.readQuorum = k
    this.writeQuorum = k === m ? k + 1 : k
    this.#timeoutMs = init.callTimeoutMs ?? 10_000
    for (const pool of init.map.pools)
      for (const n of pool.nodes) this.#addresses.set(n.id, { id: n.publicKey, address: n.address })
    this.peers = new PeerPool({
      identity: init.identity,
      hello: { version: PROTOCOL_VERSION, mapHash: init.mapHash, role: init.role ?? 'gateway' },
      connectionsPerPeer: init.connectionsPerNode ?? 4,
    })
  }

  /** The peer (public id and address) of a node of the map. */
  peer(nodeId: string): { id: string; address: string } {
    const p = this.#addresses.get(nodeId)
    if (p === undefined) throw new StoreError('INVALID_REQUEST', `no node ${nodeId} in the map`)
    return p
  }

  /** How long node `nodeId` has sent nothing on any open channel (PeerPool.silentMs). */
  silentMs(nodeId: string): number {
    return this.peers.silentMs(this.peer(nodeId).id)
  }

  /** Calls an RPC on the node that owns `drive`, addressed to that drive. */
  call<Req extends DriveRef, Res>(
    drive: DriveSlot,
    def: RpcDef<Req, Res>,
    req: Omit<Req, keyof DriveRef>,
    opts: { body?: AsyncIterable<Uint8Array>; timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<Res> {
    const full = { ...req, pool: drive.pool, set: drive.set, slot: drive.slot } as Req
    return this.peers.call(this.peer(drive.nodeId), def, full, {
      timeoutMs: opts.timeoutMs ?? (opts.body ? STREAM_DEADLINE_MS : this.#timeoutMs),
      ...(opts.body ? { body: opts.body } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    })
  }

  /** Calls an RPC that answers with a body on the node owning `drive`. */
  callStream<Req extends DriveRef, Res>(
    drive: DriveSlot,
    def: RpcDef<Req, Res>,
    req: Omit<Req, keyof DriveRef>,
    opts: { signal?: AbortSignal; buffers?: BufferPool } = {},
  ): Promise<{ res: Res; body: AsyncIterable<Uint8Array> }> {
    const full = { ...req, pool: drive.pool, set: drive.set, slot: drive.slot } as Req
    return this.peers.callStream(this.peer(drive.nodeId), def, full, {
      timeoutMs: STREAM_DEADLINE_MS,
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.buffers ? { buffers: opts.buffers } : {}),
    })
  }

  /** Calls the same RPC on every drive given; settles each, never throws. */
  async callAll<Req extends DriveRef, Res>(
    drives: readonly DriveSlot[],
    def: RpcDef<Req, Res>,
    req: Omit<Req, keyof DriveRef> | ((d: DriveSlot, i: number) => Omit<Req, keyof DriveRef>),
  ): Promise<DriveResult<Res>[]> {
    return Promise.all(
      drives.map(async (drive, i): Promise<DriveResult<Res>> => {
        try {
          const r = typeof req === 'function' ? req(drive, i) : req
          return { drive, ok: true, value: await this.call(drive, def, r) }
        } catch (err) {
          return { drive, ok: false, error: asStoreError(err) }
        }
      }),
    )
  }

  /**
   * Of n drives of a set, how many answers show every committed record (on at least the write
   * quorum) at least k times: n - wq + k.
   */
  agreeing(n: number): number {
    return Math.max(this.readQuorum, n - this.writeQuorum + this.readQuorum)
  }

  /**
   * Calls every drive of a set for a read that keeps what k of them agree on (listings): settles
   * once every call ended, or HEDGE_MS after the start once `agreeing(n)` succeeded, so a drive
   * that went silent (a frozen node) is not waited for while the others decide the answer.
   */
  async callAgreeing<Req extends DriveRef, Res>(
    drives: readonly DriveSlot[],
    def: RpcDef<Req, Res>,
    req: Omit<Req, keyof DriveRef>,
  ): Promise<DriveResult<Res>[]> {
    const need = this.agreeing(drives.length)
    const { settled } = await this.callUntil(
      drives,
      def,
      req,
      (s, graceOver) => graceOver && s.filter((r) => r.ok).length >= need,
      { graceMs: HEDGE_MS },
    )
    return settled
  }

  /**
   * Calls every drive, as callAll does, but settles as soon as the outcome is decided: once
   * `quorum` calls succeeded, or once so many failed that `quorum` cannot be reached. `settled`
   * holds the calls that had ended by then (in no particular order), `pending` the drives still
   * being called, and `rest` resolves with those calls' results when they end (it never
   * rejects). A write then waits for the fastest drives of its quorum, not the slowest drive.
   */
  callQuorum<Req extends DriveRef, Res>(
    drives: readonly DriveSlot[],
    def: RpcDef<Req, Res>,
    req: Omit<Req, keyof DriveRef> | ((d: DriveSlot, i: number) => Omit<Req, keyof DriveRef>),
    quorum: number,
  ): Promise<QuorumResults<Res>> {
    return this.callUntil(drives, def, req, (settled) => {
      let ok = 0
      for (const r of settled) if (r.ok) ok++
      return ok >= quorum || settled.length - ok > drives.length - quorum
    })
  }

  /**
   * Calls every drive, as callAll does, and settles once `decided` says the calls that ended
   * suffice (asked after each one ends, and again when `graceMs` has passed, with `graceOver`
   * true), or once every call ended. What it settles with is as for callQuorum.
   */
  callUntil<Req extends DriveRef, Res>(
    drives: readonly DriveSlot[],
    def: RpcDef<Req, Res>,
    req: Omit<Req, keyof DriveRef> | ((d: DriveSlot, i: number) => Omit<Req, keyof DriveRef>),
    decided: (settled: readonly DriveResult<Res>[], graceOver: boolean) => boolean,
    opts: { graceMs?: number } = {},
  ): Promise<QuorumResults<Res>> {
    return new Promise((resolve) => {
      const settled: DriveResult<Res>[] = []
      const late: DriveResult<Res>[] = []
      let done = false
      let graceOver = false
      let ended = 0
      let grace: NodeJS.Timeout | undefined
      let endRest: (r: DriveResult<Res>[]) => void = () => {}
      const rest = new Promise<DriveResult<Res>[]>((r) => {
        endRest = r
      })
      const decide = (): void => {
        done = true
        clearTimeout(grace)
        const got = new Set(settled.map((r) => r.drive))
        resolve({ settled, pending: drives.filter((d) => !got.has(d)), rest })
      }
      const end = (r: DriveResult<Res>): void => {
        ended++
        if (done) late.push(r)
        else {
          settled.push(r)
          if (ended === drives.length || decided(settled, graceOver)) decide()
        }
        if (ended === drives.length) endRest(late)
      }
      if (drives.length === 0) {
        decide()
        endRest(late)
        return
      }
      if (opts.graceMs !== undefined) {
        grace = setTimeout(() => {
          graceOver = true
          if (!done && decided(settled, true)) decide()
        }, opts.graceMs)
      }
      drives.forEach((drive, i) => {
        let r: Omit<Req, keyof DriveRef>
        try {
          r = typeof req === 'function' ? req(drive, i) : req
        } catch (err) {
          end({ drive, ok: false, error: asStoreError(err) })
          return
        }
        this.call(drive, def, r).then(
          (value) => end({ drive, ok: true, value }),
          (err: unknown) => end({ drive, ok: false, error: asStoreError(err) }),
        )
      })
    })
  }

  /**
   * Throws QUORUM_FAILED unless at least the write quorum of `results` succeeded; the message
   * says what was being done (`what`) and why the failed drives failed.
   */
  requireWriteQuorum(results: readonly DriveResult<unknown>[], what: string): void {
    const ok = results.filter((r) => r.ok).length
    if (ok >= this.writeQuorum) return
    const why = results.flatMap((r) => (r.ok ? [] : [`${r.drive.nodeId}: ${r.error.message}`]))
    throw new StoreError(
      'QUORUM_FAILED',
      `only ${ok} of ${results.length} drives ${what} (need ${this.writeQuorum})${why.length ? `: ${why.join('; ')}` : ''}`,
    )
  }

  /** Where `bucket/key` lives in pool `pool`. */
  place(pool: number, bucket: string, key: string): Placement {
    const { set, distribution } = placeObject(this.layout, pool, bucket, key)
    return { pool, set, distribution }
  }

  /** Every set of every pool. */
  get sets(): ErasureSet[] {
    return this.layout.pools.flatMap((p) => p.sets)
  }

  /** Every drive of the cluster. */
  get drives(): DriveSlot[] {
    return this.sets.flatMap((s) => s.drives)
  }

  /**
   * The pool a new object goes to: with one pool, that one; with several, chosen at random in
   * proportion to each pool's free space (refreshed every 10 s), so a new pool fills up first.
   */
  async poolForNewObject(): Promise<number> {
    if (this.layout.pools.length === 1) return 0
    if (Date.now() - this.#freeAt > 10_000 && this.#refreshing === undefined) {
      this.#refreshing = this.#refreshFree()
        .catch(() => {})
        .finally(() => {
          this.#freeAt = Date.now()
          this.#refreshing = undefined
        })
    }
    // Until the first answers are in, every write waits for them (not just the first one:
    // the others would all go to pool 0); later refreshes run behind the old figures.
    if (this.#freeByPool.length === 0 && this.#refreshing !== undefined) await this.#refreshing
    const free = this.#freeByPool
    const total = free.reduce((a, b) => a + b, 0)
    if (total <= 0) return 0
    let r = Math.random() * total
    for (let p = 0; p < free.length; p++) {
      r -= free[p]!
      if (r < 0) return p
    }
    return free.length - 1
  }

  async #refreshFree(): Promise<void> {
    const free = this.layout.pools.map(() => 0)
    const nodes = this.map.pools.flatMap((p) => p.nodes.map((n) => n.id))
    await Promise.all(
      nodes.map(async (id) => {
        try {
          const { drives } = await this.peers.call(
            this.peer(id),
            GetDriveInfo,
            {},
            { timeoutMs: 2000 },
          )
          for (const d of drives) if (d.online) free[d.pool] = (free[d.pool] ?? 0) + d.freeBytes
        } catch {}
      }),
    )
    this.#freeByPool = free
  }

  close(): void {
    this.peers.close()
  }
}

export function asStoreError(err: unknown): StoreError {
  if (err instanceof StoreError) return err
  const e = err as { code?: string; message?: string }
  return new StoreError('INTERNAL', e?.message ?? String(err), {}, err)
}
