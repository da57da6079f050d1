/**
 * Secrets at rest and session tokens, under the cluster master key.
 *
 * The master key (32 random bytes) is given to every gateway by a 0600 file or by the
 * environment; it never sits in cluster.yaml. Two keys are derived from it with HKDF, one for
 * sealing stored secrets and one for session tokens, so a token can never be replayed as a
 * sealed secret or the other way round. Both use AES-256-GCM with a fresh 96-bit nonce and the
 * record's identity as associated data (a sealed secret moved to another key id fails to open).
 */
import {
  createCipheriv,
  createDecipheriv,
  hkdfSync,
  randomBytes,
  randomInt,
  timingSafeEqual,
} from 'node:crypto'
import { readFile, stat, writeFile } from 'node:fs/promises'
import type { Sealed } from './model.ts'

export const MASTER_KEY_BYTES = 32
const IV_BYTES = 12
const TAG_BYTES = 16

/** Parses a master key given as 64 hex characters or base64 of 32 bytes. */
export function parseMasterKey(text: string, where: string): Buffer {
  const s = text.trim()
  let key: Buffer | undefined
  if (/^[0-9a-fA-F]{64}$/.test(s)) key = Buffer.from(s, 'hex')
  else if (/^[A-Za-z0-9+/_-]{43}=?$/.test(s)) key = Buffer.from(s, 'base64')
  if (key?.length !== MASTER_KEY_BYTES) {
    throw new Error(`${where}: the master key must be 32 bytes as 64 hex characters or base64`)
  }
  return key
}

/** Reads a master key file, refusing one that others can read. */
export async function readMasterKeyFile(path: string): Promise<Buffer> {
  const st = await stat(path)
  if ((st.mode & 0o077) !== 0) {
    throw new Error(
      `${path} is readable by others (mode ${(st.mode & 0o777).toString(8)}); run chmod 600 ${path}`,
    )
  }
  return parseMasterKey(await readFile(path, 'utf8'), path)
}

/** Writes a new random master key file (mode 0600 from creation); fails if it exists. */
export async function writeNewMasterKeyFile(path: string): Promise<void> {
  await writeFile(path, `${randomBytes(MASTER_KEY_BYTES).toString('hex')}\n`, {
    mode: 0o600,
    flag: 'wx',
  })
}

export class Sealer {
  #secrets: Buffer
  #tokens: Buffer

  constructor(master: Buffer) {
    if (master.length !== MASTER_KEY_BYTES) throw new Error('the master key must be 32 bytes')
    const salt = Buffer.from('tessera-master-key-v1')
    this.#secrets = Buffer.from(hkdfSync('sha256', master, salt, 'iam-secrets', 32))
    this.#tokens = Buffer.from(hkdfSync('sha256', master, salt, 'sts-session-tokens', 32))
  }

  /** Seals a secret bound to `aad` (the record it belongs to). */
  seal(plain: string, aad: string): Sealed {
    return seal(this.#secrets, Buffer.from(plain, 'utf8'), aad).toString('base64')
  }

  /** Opens a sealed secret; throws when it was sealed under another key or for another record. */
  open(sealed: Sealed, aad: string): string {
    return open(this.#secrets, Buffer.from(sealed, 'base64'), aad).toString('utf8')
  }

  /** A session token: the claims, encrypted and authenticated, as URL-safe text. */
  sealToken(claims: object): string {
    return seal(this.#tokens, Buffer.from(JSON.stringify(claims)), 'sts').toString('base64url')
  }

  /** The claims of a token this cluster issued, or undefined for anything else. */
  openToken<T>(token: string): T | undefined {
    if (token.length > 8192 || !/^[A-Za-z0-9_-]+$/.test(token)) return undefined
    try {
      return JSON.parse(open(this.#tokens, Buffer.from(token, 'base64url'), 'sts').toString()) as T
    } catch {
      return undefined
    }
  }
}

function seal(key: Buffer, plain: Buffer, aad: string): Buffer {
  const iv = randomBytes(IV_BYTES)
  const c = createCipheriv('aes-256-gcm', key, iv)
  c.setAAD(Buffer.from(aad))
  const body = Buffer.concat([c.update(plain), c.final()])
  return Buffer.concat([iv, c.getAuthTag(), body])
}

function open(key: Buffer, sealed: Buffer, aad: string): Buffer {
  if (sealed.length < IV_BYTES + TAG_BYTES) throw new Error('sealed value too short')
  const d = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, IV_BYTES))
  d.setAAD(Buffer.from(aad))
  d.setAuthTag(sealed.subarray(IV_BYTES, IV_BYTES + TAG_BYTES))
  return Buffer.concat([d.update(sealed.subarray(IV_BYTES + TAG_BYTES)), d.final()])
}

const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'

/** A random id of `n` characters from A–Z and 2–7, from the CSPRNG. */
export function randomId(n: number): string {
  const bytes = randomBytes(n)
  let s = ''
  for (let i = 0; i < n; i++) s += ID_ALPHABET[bytes[i]! & 31]
  return s
}

/** Access key ids: 20 characters like AWS's, the prefix telling the kind. */
export const KEY_ID_PREFIX = { key: 'TKIA', 'service-account': 'TSVC', session: 'TSTS' } as const

export function newAccessKeyId(kind: keyof typeof KEY_ID_PREFIX): string {
  return KEY_ID_PREFIX[kind] + randomId(16)
}

/** A 40-character secret access key (240 bits from the CSPRNG). */
export function newSecretAccessKey(): string {
  return randomBytes(30).toString('base64').replace(/\+/g, 'A').replace(/\//g, 'B')
}

/** A 12-digit account id. */
export function newAccountId(): string {
  let s = String(randomInt(1, 10))
  for (let i = 0; i < 11; i++) s += String(randomInt(0, 10))
  return s
}

/** Constant-time string equality. */
export function equalsConstantTime(a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}
