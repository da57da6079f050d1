/**
 * Peak resident memory and CPU time of processes (Linux), for the benchmarks' "peak RSS per
 * process" and CPU columns.
 * The kernel's own high-water mark (VmHWM in /proc/<pid>/status) is exact where sampling VmRSS
 * would miss a short spike; VmRSS is sampled as well, for processes whose status we can no
 * longer read at the end (they have exited).
 */
import { readFileSync, writeFileSync } from 'node:fs'

/** The sampler returned by {@link sampleRss}. */
export interface RssSampler {
  /** Peak resident bytes of each pid seen since the start (pid → bytes), then stops sampling. */
  stop(): Record<number, number>
}

/** Resident memory of one process in bytes: `{ rss, hwm }`, or undefined once it is gone. */
export function readRss(pid: number): { rss: number; hwm: number } | undefined {
  let status: string
  try {
    status = readFileSync(`/proc/${pid}/status`, 'latin1')
  } catch {
    return undefined
  }
  return { rss: field(status, 'VmRSS'), hwm: field(status, 'VmHWM') }
}

/**
 * Samples the resident memory of `pids` every `everyMs` until `stop()`. With `resetPeak`, the
 * kernel's high-water mark of each pid is reset first (writing 5 to /proc/<pid>/clear_refs, which
 * we may do for our own children), so the peak is this phase's and not the process's lifetime's;
 * if the reset is not permitted, the peak covers the process's whole life.
 */
export function sampleRss(
  pids: readonly number[],
  everyMs: number,
  opts: { resetPeak?: boolean } = {},
): RssSampler {
  const peak = new Map<number, number>()
  for (const pid of pids) {
    if (opts.resetPeak) {
      try {
        writeFileSync(`/proc/${pid}/clear_refs`, '5')
      } catch {
        // Not ours or not Linux: the lifetime peak is reported instead.
      }
    }
    peak.set(pid, 0)
  }
  const sample = (): void => {
    for (const pid of pids) {
      const m = readRss(pid)
      if (m) peak.set(pid, Math.max(peak.get(pid)!, m.rss, m.hwm))
    }
  }
  sample()
  const timer = setInterval(sample, everyMs)
  timer.unref()
  return {
    stop() {
      clearInterval(timer)
      sample()
      return Object.fromEntries(peak)
    },
  }
}

/** Clock ticks per second of /proc's CPU times (USER_HZ: 100 on every Linux Node runs on). */
const USER_HZ = 100

/**
 * CPU time a process has used so far, user and system, all its threads, in seconds; undefined
 * once it is gone.
 */
export function readCpuSeconds(pid: number): number | undefined {
  let stat: string
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1')
  } catch {
    return undefined
  }
  // Fields after the command (which may hold spaces): state is the 3rd, utime the 14th.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12])) / USER_HZ
}

/** A `Vm…:   1234 kB` line of /proc/<pid>/status, in bytes (0 if absent). */
function field(status: string, name: string): number {
  const at = status.indexOf(`${name}:`)
  if (at < 0) return 0
  return Number.parseInt(status.slice(at + name.length + 1), 10) * 1024
}
