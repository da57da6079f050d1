/** Parsing of the load generator's sizes, durations and operation mixes. */
import { parseByteSize } from '@tessera/protocol'
import { OP_KINDS, type OpKind } from './s3-load.ts'

/** `4KiB`, `1MiB`, `1MB`, `512B`, `4096` → bytes; throws on anything else. */
export function parseSize(text: string): number {
  const n = parseByteSize(text)
  if (n === undefined)
    throw new Error(`not a size: "${text}" (use 4KiB, 1MiB, 16MiB, 1MB or a number of bytes)`)
  return n
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/** `30s`, `500ms`, `2m`, `1m30s`, `1.5s` → milliseconds (a bare number is seconds). */
export function parseDuration(text: string): number {
  const t = text.trim()
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t) * 1000
  const parts = [...t.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)]
  if (parts.length === 0 || parts.map((m) => m[0]).join('') !== t)
    throw new Error(`not a duration: "${text}" (use 30s, 500ms, 2m or 1m30s)`)
  return parts.reduce((ms, m) => ms + Number(m[1]) * DURATION_UNITS[m[2]!]!, 0)
}

/** Accepted names in a mix; `stat` is warp's name for HEAD. */
const MIX_NAMES: Record<string, OpKind> = {
  ...Object.fromEntries(OP_KINDS.map((k) => [k, k])),
  stat: 'head',
}

/** `get=60,put=30,delete=10` → weights by operation; throws on unknown names or no weight. */
export function parseMix(text: string): Partial<Record<OpKind, number>> {
  const mix: Partial<Record<OpKind, number>> = {}
  for (const part of text.split(',')) {
    const m = /^\s*([a-z]+)\s*[=:]\s*(\d+(?:\.\d+)?)\s*$/i.exec(part)
    const kind = m ? MIX_NAMES[m[1]!.toLowerCase()] : undefined
    if (!m || !kind)
      throw new Error(
        `not a mix: "${text}" (use op=weight pairs such as get=60,put=30,delete=10; ops: ${Object.keys(MIX_NAMES).join(', ')})`,
      )
    mix[kind] = (mix[kind] ?? 0) + Number(m[2])
  }
  if (!Object.values(mix).some((w) => w > 0)) throw new Error(`the mix "${text}" has no weight`)
  return mix
}

/** 1234 → `1.2 s`, 90_000 → `1m30s`. */
export function formatDuration(ms: number): string {
  if (ms < 60_000) return `${Number((ms / 1000).toPrecision(3))} s`
  const m = Math.floor(ms / 60_000)
  const s = Math.round((ms % 60_000) / 1000)
  return s ? `${m}m${s}s` : `${m}m`
}
