import { useCallback, useEffect, useState } from 'react'
import { confirmThen, errorText } from '../clients.ts'
import { formatBytes, formatDate, formatDuration } from '../format.ts'
import { useSession } from '../session-context.ts'
import { MetricsCharts } from './metrics.tsx'

interface Drive {
  slot: number
  node: string
  path: string
  online: boolean
  totalBytes: number
  freeBytes: number
  usedBytes: number
  state?: string
  error?: string
}

interface ClusterStatus {
  cluster: string
  erasure: { data: number; parity: number }
  nodes: { id: string; address: string; online: boolean; drivesOnline: number; drives: number }[]
  sets: { pool: number; set: number; drives: Drive[]; health: string }[]
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

interface HealDrive {
  node: string
  pool: number
  set: number
  path: string
  online: boolean
  state: string
  scanned: number
  healed: number
  failed: number
  queued: number
  bytesPerSec: number
  total?: number
  done?: number
  etaSeconds?: number
  /** When the current (or last) pass started, in ms since the epoch. */
  startedAt?: number
}

interface HealReport {
  drives: HealDrive[]
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

/** How often the page refreshes, in ms. */
const REFRESH_MS = 5000

export function ClusterPage() {
  const { admin, me } = useSession()
  const [status, setStatus] = useState<ClusterStatus | undefined>()
  const [heal, setHeal] = useState<HealReport | undefined>()
  const [error, setError] = useState<string | undefined>()
  const load = useCallback(async () => {
    try {
      setStatus(await admin.call<ClusterStatus>('GET', ['cluster']))
      if (me.capabilities.viewHeal) setHeal(await admin.call<HealReport>('GET', ['heal']))
      setError(undefined)
    } catch (err) {
      setError(errorText(err))
    }
  }, [admin, me.capabilities.viewHeal])
  useEffect(() => {
    void load()
    const t = setInterval(() => void load(), REFRESH_MS)
    return () => clearInterval(t)
  }, [load])
  async function startHeal(node: string, drive: string, mode: 'full' | 'deep') {
    await confirmThen(`Start a ${mode} heal of ${node}:${drive}?`, setError, async () => {
      await admin.call('POST', ['heal'], { body: { node, drive, mode } })
      await load()
    })
  }
  const healOf = (node: string, path: string) =>
    heal?.drives.find((d) => d.node === node && d.path === path)
  return (
    <section>
      <h2>Cluster {status?.cluster}</h2>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {status && (
        <>
          <div className="tiles" data-testid="cluster-summary">
            <div className="tile">
              <span>Erasure</span>
              <strong>
                {status.erasure.data}+{status.erasure.parity}
              </strong>
            </div>
            <div className="tile">
              <span>Drives online</span>
              <strong>
                {status.health.drivesOnline} / {status.health.drivesTotal}
              </strong>
            </div>
            <div className="tile">
              <span>Sets</span>
              <strong>
                {status.health.setsOk} ok
                {status.health.setsDegraded > 0 && `, ${status.health.setsDegraded} degraded`}
                {status.health.setsReadOnly > 0 && `, ${status.health.setsReadOnly} read-only`}
                {status.health.setsUnavailable > 0 &&
                  `, ${status.health.setsUnavailable} unavailable`}
              </strong>
            </div>
            <div className="tile">
              <span>Capacity used</span>
              <strong>
                {formatBytes(status.capacity.usedBytes)} / {formatBytes(status.capacity.totalBytes)}
              </strong>
              <meter
                min={0}
                max={status.capacity.totalBytes || 1}
                value={status.capacity.usedBytes}
              />
            </div>
            <div className="tile">
              <span>Usable free</span>
              <strong>{formatBytes(status.capacity.usableBytes)}</strong>
            </div>
          </div>
          {heal && (
            <div className="card" data-testid="heal-summary">
              <h3>Healing</h3>
              <p data-testid="heal-totals">
                {heal.summary.healing} drive(s) healing · {heal.summary.queued} repairs queued ·
                healed {heal.summary.healed} · failed {heal.summary.failed} ·{' '}
                {formatBytes(heal.summary.bytesPerSec)}/s
              </p>
              {heal.summary.total !== undefined && (
                <p>
                  <progress max={heal.summary.total || 1} value={heal.summary.done ?? 0} />{' '}
                  {heal.summary.done ?? 0} / {heal.summary.total} · ETA{' '}
                  <span data-testid="heal-summary-eta">
                    {formatDuration(heal.summary.etaSeconds)}
                  </span>
                </p>
              )}
            </div>
          )}
          <h3>Nodes</h3>
          <table data-testid="nodes">
            <thead>
              <tr>
                <th>Node</th>
                <th>Address</th>
                <th>State</th>
                <th>Drives online</th>
              </tr>
            </thead>
            <tbody>
              {status.nodes.map((n) => (
                <tr key={n.id}>
                  <td>{n.id}</td>
                  <td>{n.address}</td>
                  <td>
                    <span className={`badge ${n.online ? 'ok' : 'warn'}`}>
                      {n.online ? 'online' : 'offline'}
                    </span>
                  </td>
                  <td>
                    {n.drivesOnline} / {n.drives}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <h3>Erasure sets and drives</h3>
          {status.sets.map((s) => (
            <div className="card" key={`${s.pool}/${s.set}`} data-testid="erasure-set">
              <h4>
                Pool {s.pool}, set {s.set}{' '}
                <span className={`badge ${s.health === 'ok' ? 'ok' : 'warn'}`}>{s.health}</span>
              </h4>
              <table>
                <thead>
                  <tr>
                    <th>Slot</th>
                    <th>Drive</th>
                    <th>State</th>
                    <th>Used</th>
                    <th>Heal progress</th>
                    <th />
                  </tr>
                </thead>
                <tbody>
                  {s.drives.map((d) => {
                    const h = healOf(d.node, d.path)
                    return (
                      <tr key={d.slot} data-testid="drive-row" data-drive={`${d.node}:${d.path}`}>
                        <td>{d.slot}</td>
                        <td>
                          {d.node}:{d.path}
                        </td>
                        <td>
                          <span className={`badge ${d.online ? 'ok' : 'warn'}`}>
                            {d.online ? (d.state ?? 'online') : 'offline'}
                          </span>
                          {d.error && <small> {d.error}</small>}
                        </td>
                        <td>
                          {formatBytes(d.usedBytes)} / {formatBytes(d.totalBytes)}
                        </td>
                        <td data-testid="heal-progress">
                          {h === undefined ? '–' : <HealProgress h={h} />}
                        </td>
                        <td>
                          {me.capabilities.startHeal && d.online && (
                            <>
                              <button
                                type="button"
                                title="Rebuild everything this drive should hold, at full speed"
                                onClick={() => void startHeal(d.node, d.path, 'full')}
                                data-testid="heal-button"
                              >
                                Heal
                              </button>{' '}
                              <button
                                type="button"
                                title="Read every shard back and check its checksums, at the scan rate"
                                onClick={() => void startHeal(d.node, d.path, 'deep')}
                                data-testid="deep-scan-button"
                              >
                                Deep scan
                              </button>
                            </>
                          )}
                        </td>
                      </tr>
                    )
                  })}
                </tbody>
              </table>
            </div>
          ))}
        </>
      )}
      <MetricsCharts />
    </section>
  )
}

/**
 * One drive's healer: its state, the current pass (or the last one, once idle) as done / total
 * versions with a bar, the ETA while a pass runs, and what it healed.
 */
function HealProgress({ h }: { h: HealDrive }) {
  const running = h.state !== 'idle'
  return (
    <>
      <span className={`badge ${h.state === 'healing' ? 'warn' : ''}`}>{h.state}</span>
      {h.total !== undefined && (
        <>
          {' '}
          <progress max={h.total || 1} value={h.done ?? 0} />{' '}
          <span data-testid="heal-pass">
            {running ? '' : 'last pass '}
            {h.done ?? 0} / {h.total}
          </span>
          {running && (
            <>
              {' '}
              · ETA <span data-testid="heal-eta">{formatDuration(h.etaSeconds)}</span>
            </>
          )}
          {h.startedAt !== undefined && (
            <small> · started {formatDate(new Date(h.startedAt))}</small>
          )}
        </>
      )}
      <small>
        {' '}
        · {h.healed} healed, {h.failed} failed, {h.queued} queued
      </small>
    </>
  )
}
