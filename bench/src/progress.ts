/**
 * Progress of a load phase on stderr: a cli-progress bar when stdout and stderr are both
 * terminals, else a plain line every few seconds and one at the end (CI logs, `| tee`, files).
 */
import cliProgress from 'cli-progress'
import type { LoadProgress } from './s3-load.ts'

/** Shows the progress of one phase; {@link ProgressView.stop} ends it (clears a bar). */
export interface ProgressView {
  update(p: LoadProgress): void
  stop(): void
}

/** Whether progress is drawn as a bar (both stdout and stderr are terminals). */
export function interactive(): boolean {
  return process.stdout.isTTY === true && process.stderr.isTTY === true
}

/** Seconds between plain progress lines. */
const LINE_EVERY_MS = 5000

/**
 * A progress view for one phase, labelled `label`: bounded by `total` operations (prepare,
 * cleanup) or by `durationMs` (a timed run), `bytes` when MB/s means something.
 */
export function progressView(
  label: string,
  bound: { total?: number; durationMs?: number },
  opts: { bytes?: boolean } = {},
): ProgressView {
  const byCount = bound.total !== undefined
  const rate = (p: LoadProgress): string => {
    const s = Math.max(p.elapsedMs, 1) / 1000
    const ops = `${Math.round(p.ops / s)} ops/s`
    return opts.bytes ? `${ops}, ${(p.bytes / s / 1e6).toFixed(1)} MB/s` : ops
  }
  if (interactive()) {
    const bar = new cliProgress.SingleBar(
      {
        stream: process.stderr,
        format: byCount
          ? `  ${label} {bar} {value}/{total} | {rate} | {errors} errors | {duration}s`
          : `  ${label} {bar} {value}/{total} s | {ops} ops | {rate} | {errors} errors`,
        hideCursor: true,
        clearOnComplete: true,
        barsize: 24,
      },
      cliProgress.Presets.shades_classic,
    )
    const total = byCount ? bound.total! : Math.ceil((bound.durationMs ?? 0) / 1000)
    bar.start(total, 0, { rate: '-', ops: 0, errors: 0 })
    return {
      update(p) {
        const value = byCount ? p.ops + p.errors : Math.min(total, Math.floor(p.elapsedMs / 1000))
        bar.update(value, { rate: rate(p), ops: p.ops, errors: p.errors })
      },
      stop() {
        bar.stop()
      },
    }
  }
  let last = performance.now()
  let latest: LoadProgress | undefined
  const line = (p: LoadProgress): string => {
    const done = byCount
      ? `${p.ops + p.errors}/${bound.total}`
      : `${(p.elapsedMs / 1000).toFixed(1)}/${Number(((bound.durationMs ?? 0) / 1000).toPrecision(3))} s, ${p.ops} ops`
    return `  ${label}: ${done}, ${rate(p)}, ${p.errors} errors`
  }
  return {
    update(p) {
      latest = p
      const now = performance.now()
      if (now - last < LINE_EVERY_MS) return
      last = now
      process.stderr.write(`${line(p)}\n`)
    },
    stop() {
      if (latest) process.stderr.write(`${line(latest)} (done)\n`)
    },
  }
}
