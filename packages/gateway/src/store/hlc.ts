import { randomBytes } from 'node:crypto'
import { HLC_COUNTER_SPAN, type Hlc } from '@tessera/protocol'

let last = 0

/**
 * A hybrid logical clock reading: wall-clock milliseconds × 4096 plus a counter, strictly
 * increasing within this process even when the wall clock steps back or stands still.
 */
export function hlcNow(): Hlc {
  const wall = Date.now() * HLC_COUNTER_SPAN
  last = wall > last ? wall : last + 1
  return last
}

/** A new S3 version id: 32 URL-safe characters, never 'null'. */
export function newVersionId(): string {
  return randomBytes(24).toString('base64url')
}

/** A new multipart upload id (also the upload's data folder name on the drives). */
export function newUploadId(): string {
  return randomBytes(36).toString('base64url')
}
