/**
 * Cluster status and healing for the admin API: asks every node for its drives (capacity,
 * online) and its healers (progress), and tells a node to heal a drive. Answers what it can
 * when nodes are down: an unreachable node's drives are reported offline, never guessed.
 */
import {
  type Cluster,
  type DriveHealState,
  type DriveInfo,
  GatewayStats,
  GetDriveInfo,
  HealStatus,
  StartHeal,
} from '@tessera/protocol'
import type { Iam } from '../iam/iam.ts'
import { type Caller, IamError } from '../iam/operations.ts'
import { mergeRequestStats, type RequestsReport } from './request-stats.ts'

/** How long status calls wait for a node before reporting it offline. */
export const STATUS_TIMEOUT_MS = 2000

export type SetHealth = 'ok' | 'degraded' | 'read-only' | 'unavailable'

export interface ClusterStatus {
  cluster: string
  erasure: { data: number; parity: number }
  nodes: { id: string; address: string; online: boolean; drivesOnline: number; drives: number }[]
  sets: {
    pool: number
    set: number
    drives: {
      slot: number
      node: string
      path: string
      online: boolean
      totalBytes: number
      freeBytes: number
      usedBytes: number
      state?: DriveHealState['state']
      error?: string
    }[]
    health: SetHealth
  }[]
  capacity: { totalBytes: number; freeBytes: number; usedBytes: number; usableBytes: number }
  health: {
    drivesOnline: number
    drivesTotal: number
    setsOk: number
    setsDegraded: number
    setsReadOnly: number
    setsUnavailable: number
  }
}

export interface HealReport {
  drives: (DriveHealState & { node: string })[]
  summary: {
    scanned: number
    healed: number
    failed: number
    bytesHealed: number
    queued: number
    bytesPerSec: number
    healing: number
    total?: number
    done?: number
    etaSeconds?: number
  }
}

export interface ClusterAdminOps {
  status(c: Caller): Promise<ClusterStatus>
  healStatus(c: Caller): Promise<HealReport>
  /** Every gateway's S3 request counters, as the nodes hold them (GET /requests). */
  requestStats(c: Caller): Promise<RequestsReport>
  startHeal(
    c: Caller,
    init: { node: string; drive: string; mode: 'full' | 'deep' },
  ): Promise<{ started: boolean }>
}

export class ClusterAdmin implements ClusterAdminOps {
  #cluster: Cluster
  #iam: Iam

  constructor(cluster: Cluster, iam: Iam) {
    this.#cluster = cluster
    this.#iam = iam
  }

  #nodes(): { id: string; address: string }[] {
    return this.#cluster.map.pools.flatMap((p) =>
      p.nodes.map((n) => ({ id: n.id, address: n.address })),
    )
  }

  /** Calls every node; undefined for those that do not answer in time. */
  async #ask<T>(call: (nodeId: string) => Promise<T>): Promise<Map<string, T | undefined>> {
    const out = new Map<string, T | undefined>()
    await Promise.all(
      this.#nodes().map(async (n) => {
        try {
          out.set(n.id, await call(n.id))
        } catch {
          out.set(n.id, undefined)
        }
      }),
    )
    return out
  }

  async status(c: Caller): Promise<ClusterStatus> {
    this.#iam.authorizeAdmin(c, 'admin:GetClusterStatus', 'cluster')
    const peers = this.#cluster.peers
    const [infos, heals] = await Promise.all([
      this.#ask((id) =>
        peers.call(this.#cluster.peer(id), GetDriveInfo, {}, { timeoutMs: STATUS_TIMEOUT_MS }),
      ),
      this.#ask((id) =>
        peers.call(this.#cluster.peer(id), HealStatus, {}, { timeoutMs: STATUS_TIMEOUT_MS }),
      ),
    ])
    const driveInfo = new Map<string, DriveInfo>()
    for (const r of infos.values()) {
      for (const d of r?.drives ?? []) driveInfo.set(`${d.pool}/${d.set}/${d.slot}`, d)
    }
    const healState = new Map<string, DriveHealState>()
    for (const r of heals.values()) {
      for (const d of r?.drives ?? []) healState.set(`${d.pool}/${d.set}/${d.slot}`, d)
    }
    const { data: k, parity: m } = this.#cluster.map.erasure
    const writeQuorum = this.#cluster.writeQuorum
    const health = {
      drivesOnline: 0,
      drivesTotal: 0,
      setsOk: 0,
      setsDegraded: 0,
      setsReadOnly: 0,
      setsUnavailable: 0,
    }
    const capacity = { totalBytes: 0, freeBytes: 0, usedBytes: 0, usableBytes: 0 }
    const sets: ClusterStatus['sets'] = this.#cluster.sets.map((set) => {
      const drives = set.drives.map((slot) => {
        const info = driveInfo.get(`${slot.pool}/${slot.set}/${slot.slot}`)
        const online = info?.online === true
        const st = healState.get(`${slot.pool}/${slot.set}/${slot.slot}`)
        return {
          slot: slot.slot,
          node: slot.nodeId,
          path: slot.path,
          online,
          totalBytes: info?.totalBytes ?? 0,
          freeBytes: info?.freeBytes ?? 0,
          usedBytes: info?.usedBytes ?? 0,
          ...(st ? { state: st.state } : {}),
          ...(info === undefined
            ? { error: 'node did not answer' }
            : info.error !== undefined
              ? { error: info.error }
              : {}),
        }
      })
      const up = drives.filter((d) => d.online).length
      health.drivesOnline += up
      health.drivesTotal += drives.length
      const h: SetHealth =
        up === drives.length
          ? 'ok'
          : up >= writeQuorum
            ? 'degraded'
            : up >= k
              ? 'read-only'
              : 'unavailable'
      if (h === 'ok') health.setsOk++
      else if (h === 'degraded') health.setsDegraded++
      else if (h === 'read-only') health.setsReadOnly++
      else health.setsUnavailable++
      for (const d of drives) {
        capacity.totalBytes += d.totalBytes
        capacity.freeBytes += d.freeBytes
        capacity.usedBytes += d.usedBytes
      }
      return { pool: set.pool, set: set.index, drives, health: h }
    })
    capacity.usableBytes = Math.floor((capacity.freeBytes * k) / (k + m))
    const nodes = this.#nodes().map((n) => {
      const r = infos.get(n.id)
      return {
        id: n.id,
        address: n.address,
        online: r !== undefined,
        drivesOnline: r?.drives.filter((d) => d.online).length ?? 0,
        drives: this.#cluster.drives.filter((d) => d.nodeId === n.id).length,
      }
    })
    return {
      cluster: this.#cluster.map.cluster,
      erasure: { data: k, parity: m },
      nodes,
      sets,
      capacity,
      health,
    }
  }

  async requestStats(c: Caller): Promise<RequestsReport> {
    this.#iam.authorizeAdmin(c, 'admin:GetClusterStatus', 'cluster')
    const peers = this.#cluster.peers
    const answers = await this.#ask((id) =>
      peers.call(this.#cluster.peer(id), GatewayStats, {}, { timeoutMs: STATUS_TIMEOUT_MS }),
    )
    return mergeRequestStats(answers.values())
  }

  async healStatus(c: Caller): Promise<HealReport> {
    this.#iam.authorizeAdmin(c, 'admin:GetHealStatus', 'heal')
    const peers = this.#cluster.peers
    const heals = await this.#ask((id) =>
      peers.call(this.#cluster.peer(id), HealStatus, {}, { timeoutMs: STATUS_TIMEOUT_MS }),
    )
    const drives: HealReport['drives'] = []
    for (const [node, r] of heals) for (const d of r?.drives ?? []) drives.push({ ...d, node })
    drives.sort((a, b) => a.pool - b.pool || a.set - b.set || a.slot - b.slot)
    const summary: HealReport['summary'] = {
      scanned: 0,
      healed: 0,
      failed: 0,
      bytesHealed: 0,
      queued: 0,
      bytesPerSec: 0,
      healing: 0,
    }
    let total = 0
    let done = 0
    let eta = 0
    for (const d of drives) {
      summary.scanned += d.scanned
      summary.healed += d.healed
      summary.failed += d.failed
      summary.bytesHealed += d.bytesHealed
      summary.queued += d.queued
      summary.bytesPerSec += d.bytesPerSec
      if (d.state === 'healing') {
        summary.healing++
        total += d.total ?? 0
        done += d.done ?? 0
        eta = Math.max(eta, d.etaSeconds ?? 0)
      }
    }
    if (summary.healing > 0) Object.assign(summary, { total, done, etaSeconds: eta })
    return { drives, summary }
  }

  async startHeal(
    c: Caller,
    init: { node: string; drive: string; mode: 'full' | 'deep' },
  ): Promise<{ started: boolean }> {
    this.#iam.authorizeAdmin(c, 'admin:StartHeal', 'heal')
    const slot = this.#cluster.drives.find((d) => d.nodeId === init.node && d.path === init.drive)
    if (slot === undefined) {
      throw new IamError(
        'NoSuchEntity',
        `The map has no drive ${init.drive} on node ${init.node}; see GET /cluster for the drives.`,
      )
    }
    try {
      return await this.#cluster.call(slot, StartHeal, { mode: init.mode })
    } catch (err) {
      throw new IamError(
        'ServiceFailure',
        `Node ${init.node} could not start healing ${init.drive}: ${(err as Error).message}`,
      )
    }
  }
}
