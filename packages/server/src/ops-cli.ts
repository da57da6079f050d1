/**
 * `tessera admin cluster …` and `tessera admin heal …`: the operator's view of a running
 * cluster over the gateway's admin API (docs/admin-api.md): nodes, erasure sets and drives,
 * capacity and health; healing progress, live with `--watch`; starting a heal of one drive.
 *
 * admin-cli.ts registers these groups and hands in its action runner (signed client, `--json`,
 * error printing) and table aligner, so that every `tessera admin` command behaves alike.
 * The answers' shapes below are the API's contract; the renderers tolerate missing optional
 * fields so that a gateway a little older or newer than the CLI still shows what it has.
 */
import cliProgress from 'cli-progress'
import { Command } from 'commander'

// The API's answers ------------------------------------------------------------------------------

/** A set's health: `read-only` below write quorum, `unavailable` below read quorum. */
export type SetHealth = 'ok' | 'degraded' | 'read-only' | 'unavailable'

/** What a drive's background work is doing. */
export type DriveWork = 'idle' | 'scanning' | 'healing'

/** `GET /cluster`: the cluster's nodes, sets, capacity and health. */
export interface ClusterStatus {
  cluster: string
  erasure: { data: number; parity: number }
  nodes: {
    id: string
    address: string
    online: boolean
    drivesOnline: number
    drives: number
  }[]
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
      state?: DriveWork
      /** Why the drive is offline, when known ("node did not answer", a drive error). */
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

/** One drive of `GET /heal`. */
export interface DriveHeal {
  node: string
  pool: number
  set: number
  slot: number
  path: string
  online: boolean
  state: DriveWork | string
  /** Objects checked in the current cycle. */
  scanned: number
  /** Objects whose shard on this drive was rebuilt. */
  healed: number
  /** Objects that could not be rebuilt (fewer than k good shards, or a failed write). */
  failed: number
  bytesHealed: number
  /** Objects waiting to be healed. */
  queued: number
  /** Versions the drive may lack that wait for peers to answer. */
  waiting?: number
  objectsPerSec: number
  bytesPerSec: number
  /** Work of the current heal, when known: `done` of `total`. */
  total?: number
  done?: number
  etaSeconds?: number
  /** When the current heal or cycle started, and when the last cycle ended: epoch ms. */
  startedAt?: number
  lastCycleAt?: number
}

/** `GET /heal`: healing on every drive, and the sums. */
export interface HealStatus {
  drives: DriveHeal[]
  summary: {
    scanned: number
    healed: number
    failed: number
    bytesHealed: number
    queued: number
    bytesPerSec: number
    /** Drives healing now. */
    healing: number
    total?: number
    done?: number
    etaSeconds?: number
  }
}

/** `POST /heal` body: heal one drive, `full` (missing shards) or `deep` (also re-read checksums). */
export interface HealRequest {
  node: string
  drive: string
  mode: 'full' | 'deep'
}

// What admin-cli.ts hands in ------------------------------------------------------------------

/** The part of admin-cli's action context these commands use. */
export interface OpsContext {
  api: {
    call(
      method: string,
      segments: string[],
      opts?: { query?: Record<string, string | undefined>; body?: unknown },
    ): Promise<unknown>
  }
  /** `--json`: print the API's answers. */
  json: boolean
  out(text: string): void
  /** Notes for people: stderr under --json. */
  note(text: string): void
  print(value: unknown, human: () => string): void
}

/** admin-cli's helpers, so that these commands sign, print and fail like the others. */
export interface OpsKit {
  /** Wraps an action: builds the context from the global options, prints errors, exit 1. */
  run: <A extends unknown[]>(
    fn: (x: OpsContext, ...args: A) => Promise<void>,
  ) => (...args: unknown[]) => Promise<void>
  /** Aligned columns under a header; `empty` when there are no rows. */
  table: (head: string[], rows: string[][], empty: string) => string
  /** An error printed as `tessera admin: <code>: <message>`. */
  error: (code: string, message: string) => Error
}

// Commands --------------------------------------------------------------------------------------

/** `tessera admin cluster status`. */
export function clusterCommand(kit: OpsKit): Command {
  const cluster = new Command('cluster').description('the cluster: nodes, erasure sets, capacity')
  cluster
    .command('status')
    .description(
      'nodes and their drives, every erasure set with the state of its drives, capacity and ' +
        'overall health',
    )
    .action(
      kit.run(async (x) => {
        const status = checkCluster(kit, await get(kit, x, ['cluster']))
        x.print(status, () => clusterText(status, kit.table))
      }),
    )
  return cluster
}

/** `tessera admin heal status [--watch]` and `tessera admin heal start`. */
export function healCommand(kit: OpsKit): Command {
  const heal = new Command('heal').description('healing: rebuilding lost or damaged shards')
  heal
    .command('status')
    .description('healing on every drive; --watch follows it until no drive is healing')
    .option(
      '--watch',
      'live progress per healing drive (a progress line every few seconds when stdout is not ' +
        'a terminal; one JSON answer per poll with --json), until no drive is healing',
    )
    .option(
      '--interval <seconds>',
      'seconds between polls with --watch (default 1, or 5 off a terminal)',
    )
    .action(
      kit.run(async (x, o: { watch?: boolean; interval?: string }) => {
        if (!o.watch) {
          const status = checkHeal(kit, await get(kit, x, ['heal']))
          x.print(status, () => healText(status, kit.table))
          return
        }
        const tty = process.stdout.isTTY === true && !x.json
        const seconds = o.interval === undefined ? (tty ? 1 : 5) : Number(o.interval)
        if (!(seconds >= 0.1 && seconds <= 3600)) {
          throw kit.error('UsageError', `--interval ${o.interval}: want seconds from 0.1 to 3600`)
        }
        await watchHeal(kit, x, { intervalMs: seconds * 1000, tty })
      }),
    )
  heal
    .command('start')
    .description(
      "heal one drive now: rebuild every shard it should hold from its set's other drives " +
        '(after a swap or an outage)',
    )
    .requiredOption('--node <id>', 'the node, as its id in cluster.yaml')
    .requiredOption('--drive <path>', 'the drive folder, as written in cluster.yaml')
    .option(
      '--deep',
      'instead, scan the drive now reading back every chunk to check its checksum, and ' +
        'repair what is bad (slower)',
    )
    .action(
      kit.run(async (x, o: { node: string; drive: string; deep?: boolean }) => {
        const body: HealRequest = { node: o.node, drive: o.drive, mode: o.deep ? 'deep' : 'full' }
        const answer = (await call(kit, x, 'POST', ['heal'], body)) as { started?: unknown }
        const where = `${o.node}:${o.drive}`
        x.print(answer, () =>
          answer?.started === true
            ? `Started a ${body.mode} heal of ${where}. Follow it: tessera admin heal status --watch`
            : `No heal was started for ${where}: it is probably healing already. ` +
              'See tessera admin heal status.',
        )
      }),
    )
  return heal
}

async function get(kit: OpsKit, x: OpsContext, segments: string[]): Promise<unknown> {
  return call(kit, x, 'GET', segments)
}

/** One admin call; a gateway without the route gets a message saying so. */
async function call(
  kit: OpsKit,
  x: OpsContext,
  method: string,
  segments: string[],
  body?: unknown,
): Promise<unknown> {
  try {
    return await x.api.call(method, segments, body === undefined ? {} : { body })
  } catch (err) {
    if ((err as { code?: unknown }).code === 'NoSuchRoute') {
      throw kit.error(
        'NoSuchRoute',
        `the gateway has no ${method} /${segments.join('/')} in its admin API; ` +
          'is it older than this CLI?',
      )
    }
    throw err
  }
}

/** Refuses an answer without the lists the renderers walk, naming what is missing. */
function checkCluster(kit: OpsKit, v: unknown): ClusterStatus {
  const s = v as Partial<ClusterStatus> | undefined
  const sets = Array.isArray(s?.sets) && s.sets.every((set) => Array.isArray(set?.drives))
  if (!s || !Array.isArray(s.nodes) || !sets) {
    throw kit.error('BadResponse', 'GET /cluster answered without nodes and sets with drives')
  }
  return s as ClusterStatus
}

function checkHeal(kit: OpsKit, v: unknown): HealStatus {
  const s = v as Partial<HealStatus> | undefined
  if (!s || !Array.isArray(s.drives) || typeof s.summary !== 'object' || s.summary === null) {
    throw kit.error('BadResponse', 'GET /heal answered without drives and summary')
  }
  return s as HealStatus
}

// Rendering -------------------------------------------------------------------------------------

type Table = OpsKit['table']

/** Overall health: the worst set's, or degraded while any drive is offline. */
export function overallHealth(status: Pick<ClusterStatus, 'health'>): SetHealth {
  const h = status.health
  if ((h?.setsUnavailable ?? 0) > 0) return 'unavailable'
  if ((h?.setsReadOnly ?? 0) > 0) return 'read-only'
  if ((h?.setsDegraded ?? 0) > 0 || (h?.drivesOnline ?? 0) < (h?.drivesTotal ?? 0)) {
    return 'degraded'
  }
  return 'ok'
}

/** `cluster status` for people: nodes, sets with their drives, capacity, health. */
export function clusterText(s: ClusterStatus, table: Table): string {
  const nodes = table(
    ['NODE', 'ADDRESS', 'STATUS', 'DRIVES ONLINE'],
    s.nodes.map((n) => [
      text(n.id),
      text(n.address),
      n.online ? 'online' : 'OFFLINE',
      `${count(n.drivesOnline)}/${count(n.drives)}`,
    ]),
    'No nodes.',
  )
  const rows: string[][] = []
  for (const set of s.sets) {
    set.drives.forEach((d, i) => {
      const first = i === 0
      rows.push([
        first ? text(set.pool) : '',
        first ? text(set.set) : '',
        first ? text(set.health) : '',
        text(d.slot),
        text(d.node),
        text(d.path),
        d.online ? text(d.state ?? 'idle') : 'OFFLINE',
        d.online ? bytes(d.usedBytes) : '',
        d.online ? bytes(d.freeBytes) : '',
        d.online ? bytes(d.totalBytes) : '',
        d.online && d.totalBytes > 0 ? percent(d.usedBytes / d.totalBytes) : '',
        text(d.error),
      ])
    })
  }
  const head = ['POOL', 'SET', 'HEALTH', 'SLOT', 'NODE', 'DRIVE', 'STATE', 'USED', 'FREE', 'SIZE']
  const sets = table([...head, 'USE%', 'ERROR'], rows, 'No erasure sets.')
  const c = s.capacity
  const h = s.health
  const health = overallHealth(s)
  const e = s.erasure
  return [
    `Cluster ${text(s.cluster)}: erasure ${count(e?.data)}+${count(e?.parity)}, ` +
      `${plural(s.nodes.length, 'node')}, ${plural(s.sets.length, 'set')}`,
    '',
    nodes,
    '',
    sets,
    '',
    c
      ? `Capacity: ${bytes(c.totalBytes)} raw, ${bytes(c.usedBytes)} used` +
        `${c.totalBytes > 0 ? ` (${percent(c.usedBytes / c.totalBytes)})` : ''}, ` +
        `${bytes(c.freeBytes)} free; ${bytes(c.usableBytes)} usable for objects after parity`
      : 'Capacity: not reported',
    `Health: ${health === 'ok' ? 'ok' : health.toUpperCase()}: ` +
      `${count(h?.drivesOnline)} of ${count(h?.drivesTotal)} drives online; sets ` +
      `${count(h?.setsOk)} ok, ${count(h?.setsDegraded)} degraded, ` +
      `${count(h?.setsReadOnly)} read-only, ${count(h?.setsUnavailable)} unavailable`,
  ].join('\n')
}

/** `heal status` for people: one row per drive, then the sums. */
export function healText(s: HealStatus, table: Table): string {
  const drives = table(
    [
      'NODE',
      'DRIVE',
      'POOL/SET/SLOT',
      'STATE',
      'SCANNED',
      'HEALED',
      'FAILED',
      'QUEUED',
      'HEALED BYTES',
      'RATE',
      'PROGRESS',
      'ETA',
      'LAST CYCLE',
    ],
    s.drives.map((d) => [
      text(d.node),
      text(d.path),
      `${text(d.pool)}/${text(d.set)}/${text(d.slot)}`,
      d.online === false
        ? 'OFFLINE'
        : `${text(d.state)}${d.waiting ? ` (${count(d.waiting)} waiting for peers)` : ''}`,
      count(d.scanned),
      count(d.healed),
      count(d.failed),
      count(d.queued),
      bytes(d.bytesHealed),
      d.state === 'healing' ? rate(d.bytesPerSec) : '',
      progressText(d.done, d.total),
      d.state === 'healing' ? duration(d.etaSeconds) : '',
      time(d.lastCycleAt),
    ]),
    'No drive answered: are the nodes running? See tessera admin cluster status.',
  )
  return `${drives}\n\n${summaryLine(s)}`
}

/** The sums of `GET /heal` on one line. */
export function summaryLine(s: HealStatus): string {
  const m = s.summary
  const healing = count(m.healing)
  const progress = progressText(m.done, m.total)
  return (
    `${m.healing === 1 ? '1 drive' : `${healing} drives`} healing; ` +
    `scanned ${count(m.scanned)}, healed ${count(m.healed)} (${bytes(m.bytesHealed)}), ` +
    `failed ${count(m.failed)}, queued ${count(m.queued)}` +
    (m.healing > 0 ? `; ${rate(m.bytesPerSec)}` : '') +
    (progress !== '' ? `; ${progress} done` : '') +
    (m.healing > 0 && m.etaSeconds !== undefined ? `, ETA ${duration(m.etaSeconds)}` : '')
  )
}

/** A progress line of one healing drive, for logs (`--watch` when stdout is not a terminal). */
export function healLine(d: DriveHeal, at: Date): string {
  const progress = progressText(d.done, d.total)
  return (
    `${at.toISOString().replace(/\.\d+Z$/, 'Z')} heal ${d.node}:${d.path} ` +
    `${progress === '' ? '' : `${progress} `}healed ${count(d.healed)} ` +
    `(${bytes(d.bytesHealed)}), failed ${count(d.failed)}, queued ${count(d.queued)}, ` +
    `${rate(d.bytesPerSec)}, ${Math.round(d.objectsPerSec ?? 0)} objects/s, ` +
    `ETA ${duration(d.etaSeconds)}`
  )
}

function progressText(done: number | undefined, total: number | undefined): string {
  if (done === undefined || total === undefined || total <= 0) return ''
  return `${percent(Math.min(1, done / total))} (${count(done)}/${count(total)})`
}

// Watching --------------------------------------------------------------------------------------

/** Polls that may fail in a row (a gateway restarting) before --watch gives up. */
const WATCH_MAX_FAILURES = 3

/**
 * Polls `GET /heal` until no drive is healing: progress bars on a terminal (cli-progress), a
 * line per healing drive per poll otherwise, one JSON answer per line under `--json`. Ends
 * with the status table. Ctrl-C stops watching (the heal goes on), exit status 130.
 */
export async function watchHeal(
  kit: OpsKit,
  x: OpsContext,
  opts: { intervalMs: number; tty: boolean },
): Promise<void> {
  const stop = new AbortController()
  const onSignal = (): void => stop.abort()
  process.once('SIGINT', onSignal)
  const bars = opts.tty ? new HealBars() : undefined
  let last: HealStatus | undefined
  let failures = 0
  try {
    for (let poll = 0; !stop.signal.aborted; poll++) {
      let status: HealStatus
      try {
        status = checkHeal(kit, await get(kit, x, ['heal']))
        failures = 0
      } catch (err) {
        if (++failures >= WATCH_MAX_FAILURES) throw err
        x.note(`tessera admin: heal status failed (${(err as Error).message}); trying again`)
        await sleep(opts.intervalMs, stop.signal)
        continue
      }
      last = status
      const healing = status.drives.filter((d) => d.state === 'healing')
      const done = status.summary.healing === 0 && healing.length === 0
      if (x.json) {
        x.out(JSON.stringify(status))
      } else if (bars) {
        if (done) bars.complete()
        else bars.show(healing)
      } else if (poll === 0 && done) {
        // Nothing to follow: the table below says so.
      } else {
        const now = new Date()
        for (const d of healing) x.out(healLine(d, now))
        // One drive's line says it all; the sums add to several, and mark the end.
        if (healing.length !== 1) {
          x.out(`${now.toISOString().replace(/\.\d+Z$/, 'Z')} ${summaryLine(status)}`)
        }
      }
      if (done) break
      await sleep(opts.intervalMs, stop.signal)
    }
  } finally {
    bars?.stop()
    process.removeListener('SIGINT', onSignal)
  }
  if (stop.signal.aborted) {
    x.note('Stopped watching; healing goes on.')
    process.exitCode = 130
    return
  }
  if (!x.json && last) x.out(`No drive is healing.\n\n${healText(last, kit.table)}`)
}

/** One cli-progress bar per healing drive, added as drives start healing. */
class HealBars {
  #multi = new cliProgress.MultiBar(
    {
      stream: process.stdout,
      // Payload names differ from cli-progress's own tokens ({eta}, {value}, …), which win.
      format: '{drive} [{bar}] {percentage}% | {objects} | {speed} | ETA {etaText}',
      barsize: 30,
      hideCursor: true,
      clearOnComplete: false,
      // Our own SIGINT handler stops the bars and the loop; cli-progress's would keep polling.
      gracefulExit: false,
      autopadding: true,
    },
    cliProgress.Presets.shades_classic,
  )
  #bars = new Map<string, cliProgress.SingleBar>()
  #width = 0

  show(drives: readonly DriveHeal[]): void {
    for (const d of drives) this.#width = Math.max(this.#width, `${d.node}:${d.path}`.length)
    for (const d of drives) {
      const key = `${d.node}:${d.path}`
      // Without a known total, what is known so far: healed plus queued.
      const total = Math.max(1, d.total ?? d.healed + d.queued)
      const value = Math.min(total, d.done ?? d.healed)
      const payload = {
        drive: key.padEnd(this.#width),
        objects: `${count(value)}/${count(total)} objects`,
        speed: rate(d.bytesPerSec),
        etaText: duration(d.etaSeconds),
      }
      const bar = this.#bars.get(key)
      if (bar === undefined) {
        this.#bars.set(key, this.#multi.create(total, value, payload))
      } else {
        bar.setTotal(total)
        bar.update(value, payload)
      }
    }
  }

  /** Shows every bar full: the drives finished healing (the table after says how it went). */
  complete(): void {
    for (const bar of this.#bars.values()) {
      const total = bar.getTotal()
      bar.update(total, { objects: `${total}/${total} objects`, speed: rate(0), etaText: '0s' })
    }
  }

  stop(): void {
    this.#multi.stop()
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const timer = setTimeout(done, ms)
    function done(): void {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done, { once: true })
  })
}

// Units -----------------------------------------------------------------------------------------

/** Bytes in binary units for people: `0 B`, `512 B`, `1.5 KiB`, `14.6 TiB`. */
export function bytes(n: unknown): string {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '?'
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB']
  let value = Math.abs(n)
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  const shown = unit === 0 ? String(value) : value.toFixed(value < 10 ? 2 : 1)
  return `${n < 0 ? '-' : ''}${shown} ${units[unit]}`
}

/** A rate in bytes per second: `35.2 MiB/s`. */
export function rate(bytesPerSec: unknown): string {
  return typeof bytesPerSec === 'number' ? `${bytes(bytesPerSec)}/s` : '?'
}

/** Seconds for people: `42s`, `3m05s`, `2h07m`, `3d04h`; `?` when unknown. */
export function duration(seconds: unknown): string {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds < 0) return '?'
  const s = Math.round(seconds)
  const two = (n: number) => String(n).padStart(2, '0')
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${two(s % 60)}s`
  if (s < 86_400) return `${Math.floor(s / 3600)}h${two(Math.floor((s % 3600) / 60))}m`
  return `${Math.floor(s / 86_400)}d${two(Math.floor((s % 86_400) / 3600))}h`
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`
}

function percent(fraction: number): string {
  return `${Math.round(fraction * 1000) / 10}%`
}

function count(n: unknown): string {
  return typeof n === 'number' && Number.isFinite(n) ? String(n) : '?'
}

function text(v: unknown): string {
  return v === undefined || v === null ? '' : String(v)
}

/** A time from the API (epoch ms, or an ISO string), to the second. */
function time(v: unknown): string {
  const ms = typeof v === 'number' ? v : typeof v === 'string' ? Date.parse(v) : Number.NaN
  return Number.isFinite(ms) ? new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z') : ''
}
