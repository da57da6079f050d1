/**
 * Store errors: one type, a stable `code` per failure, carried across the RPC wire as
 * `{ code, message, details }` (classes do not survive msgpack or postMessage). The gateway maps
 * codes to S3 errors in one place; checks are always `err.code === '…'`.
 */
export const STORE_ERROR_CODES = [
  'INVALID_REQUEST',
  'UNKNOWN_RPC',
  'BUCKET_NOT_FOUND',
  'BUCKET_EXISTS',
  'BUCKET_NOT_EMPTY',
  'VERSION_NOT_FOUND',
  'UPLOAD_NOT_FOUND',
  'SHARD_NOT_FOUND',
  'CHECKSUM_MISMATCH',
  'DRIVE_NOT_FOUND',
  'DRIVE_OFFLINE',
  'DRIVE_FULL',
  'META_IO',
  'QUORUM_FAILED',
  'NODE_UNAVAILABLE',
  'DEADLINE_EXCEEDED',
  'CANCELLED',
  'CHANNEL_CLOSED',
  'BODY_TOO_LARGE',
  /** Another request is changing the same thing right now (completing the same upload). */
  'BUSY',
  'INTERNAL',
] as const

export type StoreErrorCode = (typeof STORE_ERROR_CODES)[number]
const CODES: ReadonlySet<string> = new Set(STORE_ERROR_CODES)

/** Extra facts about an error, for logs and for the caller (drive, object, block, …). */
export type ErrorDetails = Record<string, string | number | boolean | undefined>

/** The one error type of the storage layer; build it with `new StoreError(code, message)`. */
export class StoreError extends Error {
  static override name = 'StoreError'
  readonly code: StoreErrorCode
  readonly details: ErrorDetails

  constructor(code: StoreErrorCode, message: string, details: ErrorDetails = {}, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause })
    this.name = 'StoreError'
    this.code = code
    this.details = details
  }

  /** The wire form. */
  toWire(): WireError {
    return { code: this.code, message: this.message, details: this.details }
  }
}

export interface WireError {
  code: string
  message: string
  details?: ErrorDetails
}

/** True when `err` carries one of the store's codes (optionally this one). */
export function isStoreError(err: unknown, code?: StoreErrorCode): err is StoreError {
  if (typeof err !== 'object' || err === null) return false
  const c = (err as { code?: unknown }).code
  return typeof c === 'string' && (code === undefined ? CODES.has(c) : c === code)
}

/** Rebuilds a StoreError from its wire form; unknown codes become INTERNAL. */
export function fromWire(w: WireError): StoreError {
  const code = CODES.has(w.code) ? (w.code as StoreErrorCode) : 'INTERNAL'
  return new StoreError(code, w.message, w.details ?? {})
}

/**
 * Any thrown value as a StoreError: store errors pass through; ENOSPC becomes DRIVE_FULL; other
 * errors with a store code keep it; everything else is INTERNAL with the original message.
 */
export function toStoreError(err: unknown): StoreError {
  if (err instanceof StoreError) return err
  const e = err as { code?: unknown; message?: unknown }
  if (e?.code === 'ENOSPC') return new StoreError('DRIVE_FULL', String(e.message), {}, err)
  if (typeof e?.code === 'string' && CODES.has(e.code)) {
    return new StoreError(e.code as StoreErrorCode, String(e.message), {}, err)
  }
  return new StoreError('INTERNAL', String(e?.message ?? err), {}, err)
}
