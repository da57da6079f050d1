/**
 * Stable codes for every way the codec refuses its input. Errors cross worker threads and,
 * later, the RPC wire, where `instanceof` does not survive: check `err.code`, never the class.
 */
export const CODEC_ERROR_CODES = [
  'INVALID_PARAMETERS',
  'SHARD_SIZE_MISMATCH',
  'TOO_FEW_SHARDS',
  'CHECKSUM_MISMATCH',
  'TRUNCATED_SHARD',
  'SHARD_STALLED',
  'INVALID_RANGE',
  'POOL_CLOSED',
] as const
export type CodecErrorCode = (typeof CODEC_ERROR_CODES)[number]
const CODES: ReadonlySet<string> = new Set(CODEC_ERROR_CODES)

/** The one error type of `@tessera/codec`; build it with the static factories. */
export class CodecError extends Error {
  static override name = 'CodecError'
  readonly code: CodecErrorCode
  /** Shard index the error is about, where there is one. */
  readonly shard?: number
  /** Block index the error is about, where there is one. */
  readonly block?: number

  constructor(
    code: CodecErrorCode,
    message: string,
    where: { shard?: number; block?: number; cause?: unknown } = {},
  ) {
    super(message, where.cause === undefined ? undefined : { cause: where.cause })
    this.name = 'CodecError'
    this.code = code
    if (where.shard !== undefined) this.shard = where.shard
    if (where.block !== undefined) this.block = where.block
  }

  static INVALID_PARAMETERS(message: string): CodecError {
    return new CodecError('INVALID_PARAMETERS', message)
  }

  static SHARD_SIZE_MISMATCH(message: string): CodecError {
    return new CodecError('SHARD_SIZE_MISMATCH', message)
  }

  static TOO_FEW_SHARDS(have: number, k: number, cause?: unknown): CodecError {
    const why = cause instanceof Error ? ` (last failure: ${cause.message})` : ''
    return new CodecError(
      'TOO_FEW_SHARDS',
      `only ${have} shard(s) available, ${k} are needed to rebuild the data${why}`,
      { cause },
    )
  }

  static CHECKSUM_MISMATCH(
    shard: number,
    block: number,
    expected: bigint,
    actual: bigint,
  ): CodecError {
    return new CodecError(
      'CHECKSUM_MISMATCH',
      `shard ${shard} block ${block}: xxh64 is ${hex(actual)}, expected ${hex(expected)}`,
      { shard, block },
    )
  }

  static TRUNCATED_SHARD(shard: number, block: number, message: string): CodecError {
    return new CodecError('TRUNCATED_SHARD', `shard ${shard} block ${block}: ${message}`, {
      shard,
      block,
    })
  }

  static SHARD_STALLED(shard: number, block: number, ms: number): CodecError {
    return new CodecError(
      'SHARD_STALLED',
      `shard ${shard} block ${block}: its source sent nothing for ${ms} ms`,
      { shard, block },
    )
  }

  static INVALID_RANGE(message: string): CodecError {
    return new CodecError('INVALID_RANGE', message)
  }

  static POOL_CLOSED(): CodecError {
    return new CodecError('POOL_CLOSED', 'the codec worker pool is closed')
  }
}

function hex(v: bigint): string {
  return `0x${v.toString(16).padStart(16, '0')}`
}

/** True when `err` carries one of the codec's codes (works across threads, where classes do not). */
export function isCodecError(err: unknown, code?: CodecErrorCode): err is CodecError {
  if (typeof err !== 'object' || err === null) return false
  const c = (err as { code?: unknown }).code
  return typeof c === 'string' && (code === undefined ? CODES.has(c) : c === code)
}
