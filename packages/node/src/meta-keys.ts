/* Key layout

Order-preserving binary keys for a drive's metadata store. A key is a one-byte namespace
followed by components, and comparing two keys byte by byte (LevelDB's order) compares their
components in turn:

- a string is its UTF-8 bytes with 0x00 escaped as 0x00 0xFF, then the terminator 0x00 0x01.
  So strings sort in UTF-8 byte order (S3's listing order: code point order, which differs
  from JavaScript's `<` for characters above U+FFFF), "a" < "a\0" < "ab", and a string's
  escaped bytes without the terminator are a prefix of the key of every string starting with
  it (a prefix scan). Strings must be well-formed Unicode: a lone surrogate has no UTF-8 form.
- a modification time is `MAX_SAFE_INTEGER - modTime`, 8 bytes big-endian, so the newest
  version of a key comes first;
- a part number is 4 bytes big-endian.

| ns  | components                              | value                                   |
|-----|-----------------------------------------|-----------------------------------------|
| `V` | bucket, key, inverted modTime, versionId | VersionRecord                          |
| `I` | bucket, key, versionId                  | the 8 inverted-time bytes of its `V` key |
| `B` | bucket                                  | BucketRecord                            |
| `U` | bucket, key, uploadId                   | UploadRecord                            |
| `P` | bucket, key, uploadId, partNumber       | PartRecord                              |
| `S` | key                                     | any msgpack value                       |
*/

/** The first byte of every key: which kind of record it holds. */
export const NAMESPACE = {
  /** Object versions, all versions of a key together, newest first. */
  version: 0x56, // 'V'
  /** versionId → position of the version in `V`, so a version is found without a scan. */
  versionIndex: 0x49, // 'I'
  bucket: 0x42, // 'B'
  upload: 0x55, // 'U'
  part: 0x50, // 'P'
  system: 0x53, // 'S'
} as const

/** Bytes of an encoded modification time. */
export const MOD_TIME_BYTES = 8
/** Bytes of an encoded part number. */
export const PART_NUMBER_BYTES = 4

const ESCAPE = 0xff
const TERMINATOR = 0x01
const TWO_32 = 2 ** 32

/** Bytes of a string component once escaped, without the terminator. */
function escapedLength(utf8: Uint8Array): number {
  let n = utf8.length
  for (const b of utf8) if (b === 0) n++
  return n
}

type Component = { bytes: Uint8Array; kind: 'string' | 'open' | 'raw' }

/** Builds a key from its components with one allocation (exact size first). */
class KeyBuilder {
  readonly #namespace: number
  readonly #components: Component[] = []
  #size = 1

  constructor(namespace: number) {
    this.#namespace = namespace
  }

  /** Adds a string; `open` leaves off the terminator, making a prefix of longer strings. */
  string(s: string, open = false): this {
    const bytes = utf8Of(s)
    this.#components.push({ bytes, kind: open ? 'open' : 'string' })
    this.#size += escapedLength(bytes) + (open ? 0 : 2)
    return this
  }

  /** Adds bytes that are already encoded. */
  raw(bytes: Uint8Array): this {
    this.#components.push({ bytes, kind: 'raw' })
    this.#size += bytes.length
    return this
  }

  modTime(t: number): this {
    return this.raw(encodeModTime(t))
  }

  partNumber(n: number): this {
    if (!Number.isInteger(n) || n < 0 || n >= TWO_32) {
      throw new RangeError(`part number must be an integer in [0, 2^32) (got ${n})`)
    }
    const b = Buffer.allocUnsafe(PART_NUMBER_BYTES)
    b.writeUInt32BE(n, 0)
    return this.raw(b)
  }

  build(): Buffer {
    const out = Buffer.allocUnsafe(this.#size)
    out[0] = this.#namespace
    let pos = 1
    for (const { bytes, kind } of this.#components) {
      if (kind === 'raw') {
        out.set(bytes, pos)
        pos += bytes.length
      } else {
        pos = writeString(out, pos, bytes, kind === 'string')
      }
    }
    return out
  }
}

/** Writes escaped `utf8` (and the terminator) at `pos`; returns the position after it. */
function writeString(out: Buffer, pos: number, utf8: Uint8Array, terminate: boolean): number {
  for (const b of utf8) {
    out[pos++] = b
    if (b === 0) out[pos++] = ESCAPE
  }
  if (terminate) {
    out[pos++] = 0
    out[pos++] = TERMINATOR
  }
  return pos
}

/** One string component on its own: escaped UTF-8 and the terminator. */
export function encodeString(s: string): Buffer {
  const utf8 = utf8Of(s)
  const out = Buffer.allocUnsafe(escapedLength(utf8) + 2)
  writeString(out, 0, utf8, true)
  return out
}

// With the u flag a well-formed surrogate pair is one code point, so only lone halves match.
const LONE_SURROGATE = /\p{Cs}/u

function utf8Of(s: string): Buffer {
  if (typeof s !== 'string') throw new TypeError(`key components must be strings (got ${typeof s})`)
  if (LONE_SURROGATE.test(s)) {
    throw new RangeError(
      `key component ${JSON.stringify(s)} has a lone surrogate, which has no UTF-8 form`,
    )
  }
  return Buffer.from(s, 'utf8')
}

/** `MAX_SAFE_INTEGER - t` as 8 bytes big-endian: later times sort first. */
export function encodeModTime(t: number): Buffer {
  if (!Number.isSafeInteger(t) || t < 0) {
    throw new RangeError(`modTime must be a non-negative safe integer (got ${t})`)
  }
  const inv = Number.MAX_SAFE_INTEGER - t
  const b = Buffer.allocUnsafe(MOD_TIME_BYTES)
  b.writeUInt32BE(Math.floor(inv / TWO_32), 0)
  b.writeUInt32BE(inv % TWO_32, 4)
  return b
}

/** The modification time from the 8 bytes at `offset` written by {@link encodeModTime}. */
export function decodeModTime(bytes: Uint8Array, offset = 0): number {
  const v = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  return Number.MAX_SAFE_INTEGER - (v.readUInt32BE(offset) * TWO_32 + v.readUInt32BE(offset + 4))
}

/**
 * Reads the string component that starts at `offset`. Returns the string and the offset just
 * past its terminator. Throws on a component without a terminator or with a bad escape.
 */
export function decodeString(bytes: Uint8Array, offset: number): { value: string; end: number } {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let zero = buf.indexOf(0, offset)
  if (zero < 0 || zero + 1 >= buf.length) throw new RangeError('unterminated key component')
  if (buf[zero + 1] === TERMINATOR) {
    return { value: buf.toString('utf8', offset, zero), end: zero + 2 }
  }
  // Rare: the string holds 0x00 bytes; unescape into a copy.
  const out = Buffer.allocUnsafe(buf.length - offset)
  let n = 0
  let pos = offset
  while (zero >= 0 && zero + 1 < buf.length) {
    n += buf.copy(out, n, pos, zero)
    const next = buf[zero + 1]
    if (next === TERMINATOR) return { value: out.toString('utf8', 0, n), end: zero + 2 }
    if (next !== ESCAPE) throw new RangeError(`bad escape 0x00 0x${next?.toString(16)} in key`)
    out[n++] = 0
    pos = zero + 2
    zero = buf.indexOf(0, pos)
  }
  throw new RangeError('unterminated key component')
}

/**
 * The smallest key greater than every key that starts with `prefix` (the exclusive upper bound
 * of a prefix scan), or undefined when there is none (the prefix is all 0xFF).
 */
export function prefixEnd(prefix: Uint8Array): Buffer | undefined {
  let i = prefix.length - 1
  while (i >= 0 && prefix[i] === 0xff) i--
  if (i < 0) return undefined
  const out = Buffer.from(prefix.subarray(0, i + 1))
  out[i] = (out[i] as number) + 1
  return out
}

/** Byte order of two keys (LevelDB's default comparator). */
export function compareKeys(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b)
}

/** The whole of a namespace: `[ns]` up to `[ns + 1]`. */
export function namespaceRange(namespace: number): { gte: Buffer; lt: Buffer } {
  return { gte: Buffer.from([namespace]), lt: Buffer.from([namespace + 1]) }
}

/** `V | bucket | key | inverted modTime | versionId`. */
export function versionKey(
  bucket: string,
  key: string,
  modTime: number,
  versionId: string,
): Buffer {
  return new KeyBuilder(NAMESPACE.version)
    .string(bucket)
    .string(key)
    .modTime(modTime)
    .string(versionId)
    .build()
}

/** The prefix shared by all versions of one key: `V | bucket | key`. */
export function versionKeyPrefix(bucket: string, key: string): Buffer {
  return new KeyBuilder(NAMESPACE.version).string(bucket).string(key).build()
}

/**
 * The prefix of the versions of every key of `bucket` that starts with `keyPrefix`:
 * `V | bucket | keyPrefix` without the key's terminator. An empty `keyPrefix` covers the bucket.
 */
export function versionScanPrefix(bucket: string, keyPrefix = ''): Buffer {
  return new KeyBuilder(NAMESPACE.version).string(bucket).string(keyPrefix, true).build()
}

/** The parts of a `V` key. */
export interface DecodedVersionKey {
  bucket: string
  key: string
  modTime: number
  versionId: string
}

/** Splits a key made by {@link versionKey}. */
export function decodeVersionKey(bytes: Uint8Array): DecodedVersionKey {
  checkNamespace(bytes, NAMESPACE.version)
  const bucket = decodeString(bytes, 1)
  const key = decodeString(bytes, bucket.end)
  const modTime = decodeModTime(bytes, key.end)
  const versionId = decodeString(bytes, key.end + MOD_TIME_BYTES)
  return { bucket: bucket.value, key: key.value, modTime, versionId: versionId.value }
}

/** `I | bucket | key | versionId`; its value is the version's encoded modTime. */
export function versionIndexKey(bucket: string, key: string, versionId: string): Buffer {
  return new KeyBuilder(NAMESPACE.versionIndex).string(bucket).string(key).string(versionId).build()
}

/** `B | name`. */
export function bucketKey(name: string): Buffer {
  return new KeyBuilder(NAMESPACE.bucket).string(name).build()
}

/** `U | bucket | key | uploadId`. */
export function uploadKey(bucket: string, key: string, uploadId: string): Buffer {
  return new KeyBuilder(NAMESPACE.upload).string(bucket).string(key).string(uploadId).build()
}

/** The prefix of the uploads of one key: `U | bucket | key`. */
export function uploadKeyPrefix(bucket: string, key: string): Buffer {
  return new KeyBuilder(NAMESPACE.upload).string(bucket).string(key).build()
}

/** The prefix of the uploads of every key of `bucket` starting with `keyPrefix`. */
export function uploadScanPrefix(bucket: string, keyPrefix = ''): Buffer {
  return new KeyBuilder(NAMESPACE.upload).string(bucket).string(keyPrefix, true).build()
}

/** `P | bucket | key | uploadId | partNumber`. */
export function partKey(bucket: string, key: string, uploadId: string, partNumber: number): Buffer {
  return new KeyBuilder(NAMESPACE.part)
    .string(bucket)
    .string(key)
    .string(uploadId)
    .partNumber(partNumber)
    .build()
}

/** The prefix of all parts of one upload: `P | bucket | key | uploadId`. */
export function partKeyPrefix(bucket: string, key: string, uploadId: string): Buffer {
  return new KeyBuilder(NAMESPACE.part).string(bucket).string(key).string(uploadId).build()
}

/** `S | key`. */
export function systemKey(key: string): Buffer {
  return new KeyBuilder(NAMESPACE.system).string(key).build()
}

/** The prefix of every system key starting with `prefix`. */
export function systemScanPrefix(prefix: string): Buffer {
  return new KeyBuilder(NAMESPACE.system).string(prefix, true).build()
}

/** The string after the namespace byte of a `B` or `S` key. */
export function decodeSingleKey(bytes: Uint8Array, namespace: number): string {
  checkNamespace(bytes, namespace)
  return decodeString(bytes, 1).value
}

function checkNamespace(bytes: Uint8Array, namespace: number): void {
  if (bytes[0] !== namespace) {
    throw new RangeError(
      `key has namespace 0x${bytes[0]?.toString(16)}, expected 0x${namespace.toString(16)}`,
    )
  }
}
