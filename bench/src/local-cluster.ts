/**
 * What the S3 benchmarks share about the local cluster they measure: its layout (4 nodes,
 * RS(2,2), one gateway), the pids of its processes by role, and the warnings and errors in its
 * logs after a run.
 */
import { readFile } from 'node:fs/promises'
import { type LocalCluster, startLocalCluster } from '@tessera/server'

const KiB = 1024
const MiB = 1024 * KiB

/** The benchmarks' cluster: 4 storage nodes of one drive, RS(2,2), one gateway. */
export const BENCH_CLUSTER = {
  nodes: 4,
  drivesPerNode: 1,
  data: 2,
  parity: 2,
  gateways: 1,
  blockSize: MiB,
  inlineBelow: 128 * KiB,
} as const

/**
 * Starts a fresh {@link BENCH_CLUSTER} in `dir` (configs, logs and drives), its processes on
 * loopback; `say` hears of any process that exits while it runs.
 */
export function startBenchCluster(dir: string, say: (line: string) => void): Promise<LocalCluster> {
  return startLocalCluster({
    dir,
    ...BENCH_CLUSTER,
    logLevel: 'info',
    // Overwritten and deleted data leaves the drives soon.
    trashIntervalMs: 1000,
    onExit: (id, code, signal) => say(`  ${id} exited (${code ?? signal}) during the run`),
    // The benchmarks measure S3, not the web console: without this a tree whose console has
    // not been built (it needs vite) could not start a gateway. `env` execs node in its place,
    // so the pid (for CPU and RSS figures) stays the gateway's.
    launcher: (id) => (id.startsWith('g') ? ['env', 'TESSERA_CONSOLE=false'] : undefined),
  })
}

/** A kind of warning or error found in the logs, with how often it occurred. */
export interface LogProblem {
  process: string
  level: string
  msg: string
  count: number
  example: string
}

/**
 * Pids of the cluster by role: `gateway` (g1) and the nodes by id. Restarts (and lists in
 * `restarts`) any process that has died, reporting it through `say`.
 */
export async function clusterPids(
  cluster: LocalCluster,
  restarts: string[],
  say: (line: string) => void,
): Promise<Record<string, number>> {
  for (const p of [...cluster.nodes, ...cluster.gateways]) {
    if (!p.child) {
      restarts.push(p.id)
      say(`  ${p.id} is not running: restarting it (see ${p.logPath})`)
      await cluster.start(p.id)
    }
  }
  const pids = cluster.pids()
  const out: Record<string, number> = {}
  for (const [id, pid] of Object.entries(pids)) out[id === 'g1' ? 'gateway' : id] = pid
  return out
}

/** Warnings and errors in the cluster's logs (pino lines of level ≥ 40, and any other text). */
export async function logProblems(cluster: LocalCluster): Promise<LogProblem[]> {
  const found = new Map<string, LogProblem>()
  for (const p of [...cluster.gateways, ...cluster.nodes]) {
    const text = await readFile(p.logPath, 'utf8').catch(() => '')
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue
      let level = 'text'
      let msg = line.slice(0, 120)
      try {
        const rec = JSON.parse(line) as { level?: number; msg?: string; listening?: unknown }
        if (rec.listening !== undefined || (rec.level ?? 0) < 40) continue
        level = rec.level === 40 ? 'warn' : rec.level === 50 ? 'error' : `level ${rec.level}`
        msg = rec.msg ?? ''
      } catch {
        // Not a pino line: a stack trace or a message on stderr.
      }
      const id = `${p.id}\u0000${level}\u0000${msg}`
      const had = found.get(id)
      if (had) had.count++
      else found.set(id, { process: p.id, level, msg, count: 1, example: line.slice(0, 600) })
    }
  }
  return [...found.values()]
}
