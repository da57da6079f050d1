/**
 * `tessera-node heal --config node.yaml --drive <path> [--deep] [--no-wait]`: asks the running
 * node (over its own RPC port, with the node's identity) to start a full heal of one of its
 * drives, or a deep scan cycle, then follows HealStatus until it ends, printing progress.
 */
import { resolve } from 'node:path'
import {
  computeLayout,
  type DriveHealState,
  HealStatus,
  loadClusterMap,
  loadIdentity,
  PeerPool,
  PROTOCOL_VERSION,
  StartHeal,
  StoreError,
  setsOfNode,
} from '@tessera/protocol'
import type { NodeConfig } from '../config.ts'

export interface HealCommandOptions {
  config: NodeConfig
  /** The drive folder, as in cluster.yaml (relative paths from the working folder). */
  drive: string
  deep: boolean
  /** Follow the heal until it ends (default true). */
  wait: boolean
  /** Where progress lines go. */
  print: (line: string) => void
  /** Between two HealStatus polls; default 1000 ms. */
  pollMs?: number
}

function describe(s: DriveHealState): string {
  const parts = [`${s.state}`]
  if (s.total !== undefined) parts.push(`${s.done ?? 0}/${s.total} versions`)
  if (s.etaSeconds !== undefined) parts.push(`eta ${s.etaSeconds} s`)
  parts.push(`healed ${s.healed}`, `failed ${s.failed}`, `queued ${s.queued}`)
  if (s.waiting) parts.push(`${s.waiting} waiting for peers`)
  parts.push(`${(s.bytesPerSec / 1e6).toFixed(1)} MB/s`)
  return parts.join(', ')
}

/** Runs the command; resolves with the drive's last state. */
export async function healCommand(opts: HealCommandOptions): Promise<DriveHealState> {
  const { map, hash } = await loadClusterMap(opts.config.map)
  const identity = await loadIdentity(opts.config.identity)
  const self = map.pools.flatMap((p) => p.nodes).find((n) => n.id === opts.config.nodeId)
  if (self === undefined)
    throw new StoreError('INVALID_REQUEST', `node ${opts.config.nodeId} is not in the cluster map`)
  const wanted = resolve(opts.drive)
  const slots = setsOfNode(computeLayout(map), opts.config.nodeId)
  const slot = slots.find((s) => resolve(s.path) === wanted)
  if (slot === undefined) {
    throw new StoreError(
      'DRIVE_NOT_FOUND',
      `node ${opts.config.nodeId} has no drive ${opts.drive}; its drives: ${slots.map((s) => s.path).join(', ')}`,
    )
  }
  // The node listens where the config says, else at its address in the map.
  const address = (opts.config.listen ?? self.address).replace(
    /^(0\.0\.0\.0|\[::\]|::):/,
    '127.0.0.1:',
  )
  const pool = new PeerPool({
    identity,
    hello: { version: PROTOCOL_VERSION, mapHash: hash, role: 'node' },
  })
  const peer = { id: identity.id, address }
  const ref = { pool: slot.pool, set: slot.set, slot: slot.slot }
  const mode = opts.deep ? 'deep' : 'full'
  try {
    const asked = Date.now()
    const { started } = await pool.call(peer, StartHeal, { ...ref, mode })
    opts.print(
      started
        ? `${mode === 'full' ? 'full heal' : 'deep scan'} of ${slot.path} started`
        : `a ${mode === 'full' ? 'full heal' : 'deep scan'} of ${slot.path} is already under way`,
    )
    const state = async () => {
      const r = await pool.call(peer, HealStatus, {})
      return r.drives.find((d) => d.slot === ref.slot && d.set === ref.set && d.pool === ref.pool)!
    }
    let s = await state()
    if (!opts.wait) return s
    for (;;) {
      await new Promise((r) => setTimeout(r, opts.pollMs ?? 1000))
      s = await state()
      opts.print(describe(s))
      // The pass asked for (or, when one was under way already, that one) has ended. (A full
      // heal that must run again for peers that did not answer stays 'healing'.)
      const since = started ? asked : 0
      if (s.state === 'idle' && (s.startedAt ?? 0) >= since && (s.endedAt ?? 0) >= asked) break
    }
    opts.print(`done: ${describe(s)}`)
    return s
  } finally {
    pool.close()
  }
}
