/**
 * The checksums of S3 objects: Content-MD5 and the MD5 behind the ETag, and the flexible
 * checksums CRC32, CRC32C, SHA1, SHA256 and CRC64NVME. Computing them, reading what a request
 * says about them (headers, trailers), checking a body against them with the errors AWS gives,
 * and the checksum and ETag of a multipart object from those of its parts.
 */
/* Design notes

  Speed. Every PUT body goes through MD5 (for the ETag) and at most one flexible checksum, on
  the event loop, so each checksum must be much faster than MD5 (about 0.75 GB/s here):
  - CRC32 is zlib's native crc32 (Node ≥ 20.15), several GB/s.
  - CRC32C and CRC64NVME are table-driven, slicing-by-16, in this file: about 2 and 1.3 GB/s.
    The packages we have are far slower (@aws-crypto/crc32c: about 0.1 GB/s, byte by byte
    through an iterator) or asynchronous (@aws-sdk/crc64-nvme: `digest()` returns a Promise,
    0.55 GB/s). The tests check this code against both of them.
  - SHA1 and SHA256 are node:crypto.

  Multipart. S3 gives a multipart object one of two checksum types:
  - COMPOSITE (CRC32, CRC32C, SHA1, SHA256; the default except for CRC64NVME): the algorithm
    over the concatenated raw part checksums, base64, then `-<part count>`.
  - FULL_OBJECT (CRC32, CRC32C, CRC64NVME; the only type of CRC64NVME): the CRC of the whole
    object, without a suffix, made from the part CRCs and sizes without reading the data:
    crc(A‖B) = crc(A)·x^(8·|B|) ⊕ crc(B) in GF(2)[x] modulo the CRC polynomial. That holds for
    all three because each starts from all ones and ends with an xor of all ones, so the two
    cancel. The product is computed on reflected bit strings, as zlib's crc32_combine does.

  Values travel as S3 sends them: base64 of the big-endian digest (CRC32 of "123456789" is
  cbf43926, sent as "y/Q5Jg=="). A value must be the canonical base64 of exactly the digest
  size, as AWS requires: "y/Q5Jh==" (non-zero padding bits) is refused.
*/
import { createHash, type Hash } from 'node:crypto'
import { crc32 } from 'node:zlib'
import { S3Error } from './errors.ts'

/** The flexible checksum algorithms of S3, as its API names them. */
export const CHECKSUM_ALGORITHMS = ['CRC32', 'CRC32C', 'SHA1', 'SHA256', 'CRC64NVME'] as const
export type ChecksumAlgorithm = (typeof CHECKSUM_ALGORITHMS)[number]
/** The algorithms a multipart object may have a FULL_OBJECT checksum of. */
export type FullObjectAlgorithm = 'CRC32' | 'CRC32C' | 'CRC64NVME'
/** The algorithms a multipart object may have a COMPOSITE checksum of. */
export type CompositeAlgorithm = 'CRC32' | 'CRC32C' | 'SHA1' | 'SHA256'
/** How the checksum of a multipart object is made from those of its parts. */
export type ChecksumType = 'COMPOSITE' | 'FULL_OBJECT'

/** Size in bytes of each algorithm's digest. */
export const CHECKSUM_SIZE_BYTES: Readonly<Record<ChecksumAlgorithm, number>> = {
  CRC32: 4,
  CRC32C: 4,
  SHA1: 20,
  SHA256: 32,
  CRC64NVME: 8,
}

/** The header (and trailer) that carries a checksum: `x-amz-checksum-crc32` etc. */
export function checksumHeader(alg: ChecksumAlgorithm): string {
  return `x-amz-checksum-${alg.toLowerCase()}`
}

/** The algorithm of a name as clients send it (`CRC32`, `crc32`), or undefined. */
export function parseChecksumAlgorithm(name: string): ChecksumAlgorithm | undefined {
  const upper = name.trim().toUpperCase()
  return CHECKSUM_ALGORITHMS.find((a) => a === upper)
}

/**
 * The raw digest of a base64 checksum value, or undefined unless the value is the canonical
 * base64 of exactly the algorithm's digest size (what AWS accepts). Check client-sent part
 * checksums (CompleteMultipartUpload) with this before combining them.
 */
export function decodeChecksum(alg: ChecksumAlgorithm, value: string): Buffer | undefined {
  const raw = decodeBase64(value)
  return raw?.length === CHECKSUM_SIZE_BYTES[alg] ? raw : undefined
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/** Strict base64: Buffer.from() skips bad characters and ignores padding bits. */
function decodeBase64(value: string): Buffer | undefined {
  if (!BASE64.test(value)) return undefined
  const raw = Buffer.from(value, 'base64')
  return raw.toString('base64') === value ? raw : undefined
}

// ---------------------------------------------------------------------------------------------
// Computing

/** A running checksum. */
export interface Hasher {
  update(data: Uint8Array): void
  /** The checksum so far, base64 of the big-endian digest, as S3 headers carry it. Call once. */
  digest(): string
}

/** A running checksum of the algorithm. */
export function createChecksum(alg: ChecksumAlgorithm): Hasher {
  switch (alg) {
    case 'CRC32':
      return new Crc32Hasher(crc32)
    case 'CRC32C':
      return new Crc32Hasher(crc32c)
    case 'CRC64NVME':
      return new Crc64NvmeHasher()
    case 'SHA1':
      return new HashHasher(createHash('sha1'))
    case 'SHA256':
      return new HashHasher(createHash('sha256'))
  }
}

/** A running MD5 (Content-MD5, ETags): node:crypto's. */
export interface Md5 {
  update(data: Uint8Array): void
  digest(): Buffer
}

export function createMd5(): Md5 {
  return createHash('md5')
}

class Crc32Hasher implements Hasher {
  readonly #fn: (data: Uint8Array, crc: number) => number
  #crc = 0

  constructor(fn: (data: Uint8Array, crc: number) => number) {
    this.#fn = fn
  }

  update(data: Uint8Array): void {
    this.#crc = this.#fn(data, this.#crc)
  }

  digest(): string {
    const out = Buffer.allocUnsafe(4)
    out.writeUInt32BE(this.#crc >>> 0)
    return out.toString('base64')
  }
}

class HashHasher implements Hasher {
  readonly #hash: Hash

  constructor(hash: Hash) {
    this.#hash = hash
  }

  update(data: Uint8Array): void {
    this.#hash.update(data)
  }

  digest(): string {
    return this.#hash.digest('base64')
  }
}

/**
 * Tables for slicing-by-16 of a reflected 32-bit CRC: table s (at s·256) advances a byte
 * through s more zero bytes, so 16 input bytes fold into the CRC with 16 lookups.
 */
function crc32Tables(poly: number): Int32Array {
  const t = new Int32Array(16 * 256)
  for (let i = 0; i < 256; i++) {
    let c = i
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ poly : c >>> 1
    t[i] = c
  }
  for (let s = 1; s < 16; s++) {
    for (let i = 0; i < 256; i++) {
      const prev = t[(s - 1) * 256 + i]!
      t[s * 256 + i] = (prev >>> 8) ^ t[prev & 0xff]!
    }
  }
  return t
}

const CRC32C_TABLE = crc32Tables(0x82f63b78)

/** CRC32C (Castagnoli) of `data`, continuing from `crc` (a finished CRC, 0 to start), like zlib's crc32. */
function crc32c(data: Uint8Array, crc: number): number {
  const t = CRC32C_TABLE
  const n = data.length
  const end = n - (n & 15)
  let c = ~crc
  let i = 0
  for (; i < end; i += 16) {
    const a = c ^ (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24))
    c =
      t[3840 + (a & 0xff)]! ^
      t[3584 + ((a >>> 8) & 0xff)]! ^
      t[3328 + ((a >>> 16) & 0xff)]! ^
      t[3072 + (a >>> 24)]! ^
      t[2816 + data[i + 4]!]! ^
      t[2560 + data[i + 5]!]! ^
      t[2304 + data[i + 6]!]! ^
      t[2048 + data[i + 7]!]! ^
      t[1792 + data[i + 8]!]! ^
      t[1536 + data[i + 9]!]! ^
      t[1280 + data[i + 10]!]! ^
      t[1024 + data[i + 11]!]! ^
      t[768 + data[i + 12]!]! ^
      t[512 + data[i + 13]!]! ^
      t[256 + data[i + 14]!]! ^
      t[data[i + 15]!]!
  }
  for (; i < n; i++) c = (c >>> 8) ^ t[(c ^ data[i]!) & 0xff]!
  return ~c >>> 0
}

const CRC64NVME_POLY_HI = 0x9a6c9329
const CRC64NVME_POLY_LO = 0xac4bc9b5 | 0

/** Slicing-by-16 tables of CRC64NVME (reflected), as low and high 32-bit halves. */
function crc64Tables(): { lo: Int32Array; hi: Int32Array } {
  const lo = new Int32Array(16 * 256)
  const hi = new Int32Array(16 * 256)
  for (let i = 0; i < 256; i++) {
    let l = i
    let h = 0
    for (let k = 0; k < 8; k++) {
      const carry = l & 1
      l = (l >>> 1) | (h << 31)
      h >>>= 1
      if (carry) {
        l ^= CRC64NVME_POLY_LO
        h ^= CRC64NVME_POLY_HI
      }
    }
    lo[i] = l
    hi[i] = h
  }
  for (let s = 1; s < 16; s++) {
    for (let i = 0; i < 256; i++) {
      const pl = lo[(s - 1) * 256 + i]!
      const ph = hi[(s - 1) * 256 + i]!
      const x = pl & 0xff
      lo[s * 256 + i] = ((pl >>> 8) | (ph << 24)) ^ lo[x]!
      hi[s * 256 + i] = (ph >>> 8) ^ hi[x]!
    }
  }
  return { lo, hi }
}

const CRC64NVME_TABLE = crc64Tables()

/** CRC64NVME on two 32-bit halves: JavaScript has no fast 64-bit integers (BigInt allocates). */
class Crc64NvmeHasher implements Hasher {
  // The register, not yet inverted: CRC64NVME starts from all ones.
  #lo = -1
  #hi = -1

  update(data: Uint8Array): void {
    const L = CRC64NVME_TABLE.lo
    const H = CRC64NVME_TABLE.hi
    const n = data.length
    const end = n - (n & 15)
    let l = this.#lo
    let h = this.#hi
    let i = 0
    for (; i < end; i += 16) {
      const a = l ^ (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24))
      const b =
        h ^ (data[i + 4]! | (data[i + 5]! << 8) | (data[i + 6]! << 16) | (data[i + 7]! << 24))
      const i0 = 3840 + (a & 0xff)
      const i1 = 3584 + ((a >>> 8) & 0xff)
      const i2 = 3328 + ((a >>> 16) & 0xff)
      const i3 = 3072 + (a >>> 24)
      const i4 = 2816 + (b & 0xff)
      const i5 = 2560 + ((b >>> 8) & 0xff)
      const i6 = 2304 + ((b >>> 16) & 0xff)
      const i7 = 2048 + (b >>> 24)
      const j0 = 1792 + data[i + 8]!
      const j1 = 1536 + data[i + 9]!
      const j2 = 1280 + data[i + 10]!
      const j3 = 1024 + data[i + 11]!
      const j4 = 768 + data[i + 12]!
      const j5 = 512 + data[i + 13]!
      const j6 = 256 + data[i + 14]!
      const j7 = data[i + 15]!
      l =
        L[i0]! ^
        L[i1]! ^
        L[i2]! ^
        L[i3]! ^
        L[i4]! ^
        L[i5]! ^
        L[i6]! ^
        L[i7]! ^
        L[j0]! ^
        L[j1]! ^
        L[j2]! ^
        L[j3]! ^
        L[j4]! ^
        L[j5]! ^
        L[j6]! ^
        L[j7]!
      h =
        H[i0]! ^
        H[i1]! ^
        H[i2]! ^
        H[i3]! ^
        H[i4]! ^
        H[i5]! ^
        H[i6]! ^
        H[i7]! ^
        H[j0]! ^
        H[j1]! ^
        H[j2]! ^
        H[j3]! ^
        H[j4]! ^
        H[j5]! ^
        H[j6]! ^
        H[j7]!
    }
    for (; i < n; i++) {
      const x = (l ^ data[i]!) & 0xff
      l = ((l >>> 8) | (h << 24)) ^ L[x]!
      h = (h >>> 8) ^ H[x]!
    }
    this.#lo = l
    this.#hi = h
  }

  digest(): string {
    const out = Buffer.allocUnsafe(8)
    out.writeUInt32BE(~this.#hi >>> 0, 0)
    out.writeUInt32BE(~this.#lo >>> 0, 4)
    return out.toString('base64')
  }
}

// ---------------------------------------------------------------------------------------------
// Requests

/** What a PUT or UploadPart request says about the checksums of its body. */
export interface ChecksumExpectation {
  /**
   * The flexible checksum to compute and store. Set with `expected` or `fromTrailer` when the
   * request carries a value; alone when S3 computes it without one (a part of a FULL_OBJECT
   * upload, see {@link checkPartChecksum}, or a default the caller chooses).
   */
  algorithm?: ChecksumAlgorithm
  /** The value from the x-amz-checksum-<alg> header: canonical base64. */
  expected?: string
  /** The trailer that will carry the value (x-amz-trailer), lower-case: `x-amz-checksum-crc32`. */
  fromTrailer?: string
  /** The digest Content-MD5 gives (16 bytes). */
  contentMd5?: Buffer
}

/** Headers named x-amz-checksum-* that carry no checksum value. */
const NOT_VALUE_HEADERS = new Set(['algorithm', 'type', 'mode'])

const SDK_ALGORITHM_HEADER = 'x-amz-sdk-checksum-algorithm'

function invalidRequest(message: string): S3Error {
  return new S3Error('InvalidRequest', message)
}

/**
 * What a PutObject or UploadPart request says about checksums, from its headers (lower-case
 * names): the algorithm of x-amz-sdk-checksum-algorithm, the value of an x-amz-checksum-<alg>
 * header or the trailer x-amz-trailer announces, and Content-MD5. Throws what AWS answers:
 * - two checksum value headers: InvalidRequest "Expecting a single x-amz-checksum- header.
 *   Multiple checksum Types are not allowed."; a value header and a checksum trailer:
 *   InvalidRequest "Expecting a single x-amz-checksum- header";
 * - x-amz-checksum-<unknown>: InvalidRequest "The algorithm type you specified in
 *   x-amz-checksum- header is invalid.";
 * - an x-amz-trailer that is not a checksum we know: InvalidRequest "The value specified in the
 *   x-amz-trailer header is not supported";
 * - a value that is not the canonical base64 of the digest size: InvalidRequest "Value for
 *   x-amz-checksum-crc32 header is invalid.";
 * - x-amz-sdk-checksum-algorithm unknown or naming another algorithm than the value or trailer:
 *   InvalidRequest "Value for x-amz-sdk-checksum-algorithm header is invalid."; with neither:
 *   InvalidRequest "x-amz-sdk-checksum-algorithm specified, but no corresponding
 *   x-amz-checksum-* or x-amz-trailer headers were found.";
 * - a Content-MD5 that is not base64 of 16 bytes: InvalidDigest "The Content-MD5 you specified
 *   was invalid.".
 */
export function parseChecksumHeaders(headers: Record<string, string>): ChecksumExpectation {
  const exp: ChecksumExpectation = {}

  let valueHeader: string | undefined
  let count = 0
  for (const name of Object.keys(headers)) {
    if (!name.startsWith('x-amz-checksum-')) continue
    if (NOT_VALUE_HEADERS.has(name.slice('x-amz-checksum-'.length))) continue
    valueHeader ??= name
    count++
  }
  if (count > 1) {
    throw invalidRequest(
      'Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.',
    )
  }
  let valueAlgorithm: ChecksumAlgorithm | undefined
  if (valueHeader !== undefined) {
    valueAlgorithm = CHECKSUM_ALGORITHMS.find((a) => checksumHeader(a) === valueHeader)
    if (valueAlgorithm === undefined) {
      throw invalidRequest('The algorithm type you specified in x-amz-checksum- header is invalid.')
    }
  }

  const trailer = headers['x-amz-trailer']
  let trailerAlgorithm: ChecksumAlgorithm | undefined
  if (trailer !== undefined) {
    const names = trailer
      .split(',')
      .map((s) => s.trim().toLowerCase())
      .filter((s) => s !== '')
    for (const name of names) {
      // AWS drops the second sentence when the second checksum is a trailer.
      if (valueAlgorithm !== undefined || trailerAlgorithm !== undefined) {
        throw invalidRequest('Expecting a single x-amz-checksum- header')
      }
      const alg = CHECKSUM_ALGORITHMS.find((a) => checksumHeader(a) === name)
      if (alg === undefined) {
        throw invalidRequest('The value specified in the x-amz-trailer header is not supported')
      }
      trailerAlgorithm = alg
      exp.fromTrailer = name
    }
  }

  if (valueAlgorithm !== undefined && valueHeader !== undefined) {
    const value = headers[valueHeader]!.trim()
    if (decodeChecksum(valueAlgorithm, value) === undefined) {
      throw invalidRequest(`Value for ${valueHeader} header is invalid.`)
    }
    exp.expected = value
  }
  const algorithm = valueAlgorithm ?? trailerAlgorithm

  const sdk = headers[SDK_ALGORITHM_HEADER]
  if (sdk !== undefined) {
    const named = parseChecksumAlgorithm(sdk)
    // AWS answers the same for an unknown algorithm and for one that is not the one sent.
    if (named === undefined || (algorithm !== undefined && named !== algorithm)) {
      throw invalidRequest(`Value for ${SDK_ALGORITHM_HEADER} header is invalid.`)
    }
    if (algorithm === undefined) {
      throw invalidRequest(
        `${SDK_ALGORITHM_HEADER} specified, but no corresponding x-amz-checksum-* or x-amz-trailer headers were found.`,
      )
    }
  }
  if (algorithm !== undefined) exp.algorithm = algorithm

  const md5 = headers['content-md5']
  if (md5 !== undefined) {
    const raw = decodeBase64(md5.trim())
    if (raw?.length !== 16) {
      throw new S3Error('InvalidDigest', 'The Content-MD5 you specified was invalid.', {
        'Content-MD5': md5,
      })
    }
    exp.contentMd5 = raw
  }
  return exp
}

/**
 * The body's digests, fed as the body streams through: MD5 always (the ETag), and the flexible
 * checksum of the expectation. `finish` checks them once the body (and its trailers) arrived.
 */
export class BodyDigests {
  readonly #exp: ChecksumExpectation
  /** Undefined when the caller computes the MD5 elsewhere and hands it to finish(). */
  readonly #md5: Md5 | undefined
  readonly #checksum: Hasher | undefined

  /** `opts.md5: false`: the MD5 is computed elsewhere (a digest thread) and given to finish(). */
  constructor(exp: ChecksumExpectation, opts: { md5?: boolean } = {}) {
    this.#exp = exp
    this.#md5 = opts.md5 === false ? undefined : createMd5()
    this.#checksum = exp.algorithm === undefined ? undefined : createChecksum(exp.algorithm)
  }

  update(chunk: Uint8Array): void {
    this.#md5?.update(chunk)
    this.#checksum?.update(chunk)
  }

  /**
   * Checks the digests against the expectation, with the value of a trailing checksum from
   * `trailers` (lower-case names). Throws what AWS answers:
   * - an announced trailer that did not come: MalformedTrailerError "The request contained
   *   trailing data that was not well-formed or did not conform to our published schema."
   *   (sent as InvalidRequest until errors.ts has that code);
   * - a trailer value that is not valid: InvalidRequest "Value for x-amz-checksum-crc32 trailing
   *   header is invalid.";
   * - a checksum that does not match: BadDigest "The CRC32 you specified did not match the
   *   calculated checksum.";
   * - a Content-MD5 that does not match: BadDigest "The Content-MD5 you specified did not match
   *   what we received." with ExpectedDigest and CalculatedDigest (base64).
   * Gives the MD5 and the flexible checksum to store with the object (base64).
   */
  finish(
    trailers?: Readonly<Record<string, string>>,
    md5Elsewhere?: Buffer,
  ): {
    md5: Buffer
    checksums: Partial<Record<ChecksumAlgorithm, string>>
  } {
    const exp = this.#exp
    const checksums: Partial<Record<ChecksumAlgorithm, string>> = {}
    if (exp.algorithm !== undefined && this.#checksum !== undefined) {
      let expected = exp.expected
      if (expected === undefined && exp.fromTrailer !== undefined) {
        const value = trailers?.[exp.fromTrailer]
        if (value === undefined) {
          throw new S3Error('MalformedTrailerError')
        }
        expected = value.trim()
        if (decodeChecksum(exp.algorithm, expected) === undefined) {
          throw invalidRequest(`Value for ${exp.fromTrailer} trailing header is invalid.`)
        }
      }
      const got = this.#checksum.digest()
      if (expected !== undefined && got !== expected) {
        throw new S3Error(
          'BadDigest',
          `The ${exp.algorithm} you specified did not match the calculated checksum.`,
        )
      }
      checksums[exp.algorithm] = got
    }
    const md5 = this.#md5?.digest() ?? md5Elsewhere
    if (md5 === undefined) throw new Error('BodyDigests.finish: no MD5 given')
    if (exp.contentMd5 !== undefined && !md5.equals(exp.contentMd5)) {
      throw new S3Error(
        'BadDigest',
        'The Content-MD5 you specified did not match what we received.',
        {
          ExpectedDigest: exp.contentMd5.toString('base64'),
          CalculatedDigest: md5.toString('base64'),
        },
      )
    }
    return { md5, checksums }
  }
}

// ---------------------------------------------------------------------------------------------
// Multipart

/** The checksum a multipart upload was created with (CreateMultipartUpload). */
export interface UploadChecksum {
  algorithm: ChecksumAlgorithm
  type: ChecksumType
}

const FULL_OBJECT_ALGORITHMS: readonly ChecksumAlgorithm[] = ['CRC32', 'CRC32C', 'CRC64NVME']
const COMPOSITE_ALGORITHMS: readonly ChecksumAlgorithm[] = ['CRC32', 'CRC32C', 'SHA1', 'SHA256']

/**
 * The checksum of a CreateMultipartUpload request: x-amz-checksum-algorithm and
 * x-amz-checksum-type (COMPOSITE by default, FULL_OBJECT for CRC64NVME), or undefined when the
 * request names none. Throws InvalidRequest as AWS does, checking the algorithm first:
 * - "Checksum algorithm provided is unsupported. Please try again with any of the valid types:
 *   [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]";
 * - "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.";
 * - "Value for x-amz-checksum-type header is invalid.";
 * - "The FULL_OBJECT checksum type cannot be used with the sha256 checksum algorithm." (and
 *   COMPOSITE with crc64nvme).
 */
export function parseUploadChecksum(headers: Record<string, string>): UploadChecksum | undefined {
  const algHeader = headers['x-amz-checksum-algorithm']
  const typeHeader = headers['x-amz-checksum-type']
  if (algHeader === undefined && typeHeader === undefined) return undefined
  let algorithm: ChecksumAlgorithm | undefined
  if (algHeader !== undefined) {
    algorithm = parseChecksumAlgorithm(algHeader)
    if (algorithm === undefined) {
      throw invalidRequest(
        'Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]',
      )
    }
  }
  if (algorithm === undefined) {
    throw invalidRequest(
      'The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.',
    )
  }
  if (typeHeader === undefined) {
    return { algorithm, type: algorithm === 'CRC64NVME' ? 'FULL_OBJECT' : 'COMPOSITE' }
  }
  const type = typeHeader.trim().toUpperCase()
  if (type !== 'COMPOSITE' && type !== 'FULL_OBJECT') {
    throw invalidRequest('Value for x-amz-checksum-type header is invalid.')
  }
  const allowed = type === 'FULL_OBJECT' ? FULL_OBJECT_ALGORITHMS : COMPOSITE_ALGORITHMS
  if (!allowed.includes(algorithm)) {
    throw invalidRequest(
      `The ${type} checksum type cannot be used with the ${algorithm.toLowerCase()} checksum algorithm.`,
    )
  }
  return { algorithm, type }
}

/**
 * The expectation of an UploadPart request in an upload created with a checksum: the part must
 * carry a checksum of the upload's algorithm, else InvalidRequest "Checksum Type mismatch
 * occurred, expected checksum Type: sha1, actual checksum Type: crc32c." (`null` when it carries
 * none). A part of a FULL_OBJECT upload may come without one: S3 computes it.
 */
export function checkPartChecksum(
  upload: UploadChecksum | undefined,
  exp: ChecksumExpectation,
): ChecksumExpectation {
  if (upload === undefined || exp.algorithm === upload.algorithm) return exp
  if (exp.algorithm === undefined && upload.type === 'FULL_OBJECT') {
    return { ...exp, algorithm: upload.algorithm }
  }
  const actual = exp.algorithm?.toLowerCase() ?? 'null'
  throw invalidRequest(
    `Checksum Type mismatch occurred, expected checksum Type: ${upload.algorithm.toLowerCase()}, actual checksum Type: ${actual}`,
  )
}

function decodeOrThrow(alg: ChecksumAlgorithm, value: string): Buffer {
  const raw = decodeChecksum(alg, value)
  if (raw === undefined) throw new RangeError(`not a base64 ${alg} checksum: ${value}`)
  return raw
}

/**
 * The COMPOSITE checksum of a multipart object: the algorithm over the concatenated raw part
 * checksums (in part order), base64, then `-<part count>`. Part checksums must be valid
 * ({@link decodeChecksum}); a RangeError otherwise.
 */
export function compositeChecksum(
  alg: CompositeAlgorithm,
  partChecksums: readonly string[],
): string {
  if (partChecksums.length === 0) throw new RangeError('a multipart object has at least one part')
  const h = createChecksum(alg)
  for (const c of partChecksums) h.update(decodeOrThrow(alg, c))
  return `${h.digest()}-${partChecksums.length}`
}

/**
 * A CRC as a GF(2) polynomial in reflected order, on two 32-bit halves so that CRC64NVME needs
 * no BigInt: bit `width - 1` (the top bit of `hi` for 64 bits, of `lo` for 32) is x^0.
 */
interface CrcSpec {
  width: 32 | 64
  polyHi: number
  polyLo: number
  /** x^(2^k) mod P for k = 0..63, made on first use. */
  x2n?: [number, number][]
}

const CRC_SPECS: Record<FullObjectAlgorithm, CrcSpec> = {
  CRC32: { width: 32, polyHi: 0, polyLo: 0xedb88320 | 0 },
  CRC32C: { width: 32, polyHi: 0, polyLo: 0x82f63b78 },
  CRC64NVME: { width: 64, polyHi: CRC64NVME_POLY_HI, polyLo: CRC64NVME_POLY_LO },
}

/** a·b mod P. */
function mulmod(
  spec: CrcSpec,
  aHi: number,
  aLo: number,
  bHi: number,
  bLo: number,
): [number, number] {
  let pHi = 0
  let pLo = 0
  for (let pos = spec.width - 1; pos >= 0; pos--) {
    const bit = pos >= 32 ? (aHi >>> (pos - 32)) & 1 : (aLo >>> pos) & 1
    if (bit) {
      pHi ^= bHi
      pLo ^= bLo
    }
    // b·x: one step towards higher powers is one bit to the right in reflected order.
    const carry = bLo & 1
    bLo = (bLo >>> 1) | (bHi << 31)
    bHi >>>= 1
    if (carry) {
      bHi ^= spec.polyHi
      bLo ^= spec.polyLo
    }
  }
  return [pHi, pLo]
}

/** x^(8·bytes) mod P: the factor that shifts a CRC past `bytes` bytes. */
function shiftFactor(spec: CrcSpec, bytes: number): [number, number] {
  if (spec.x2n === undefined) {
    const x1: [number, number] = spec.width === 64 ? [0x40000000, 0] : [0, 0x40000000]
    const table: [number, number][] = [x1]
    for (let k = 1; k < 64; k++) {
      const [h, l] = table[k - 1]!
      table.push(mulmod(spec, h, l, h, l))
    }
    spec.x2n = table
  }
  let p: [number, number] = spec.width === 64 ? [0x80000000 | 0, 0] : [0, 0x80000000 | 0]
  // 8·bytes = 2^3·bytes: walk the bits of `bytes` from k = 3. Arithmetic, not bitwise: parts
  // may exceed 2^32 bytes.
  let n = bytes
  for (let k = 3; n > 0; k++) {
    if (n % 2 === 1) {
      const [h, l] = spec.x2n[k]!
      p = mulmod(spec, h, l, p[0], p[1])
    }
    n = Math.floor(n / 2)
  }
  return p
}

/**
 * The FULL_OBJECT checksum of a multipart object: the CRC of the whole object, made from its
 * parts' CRCs (base64) and sizes (bytes), in part order, without a part-count suffix. Part
 * checksums must be valid ({@link decodeChecksum}); a RangeError otherwise.
 */
export function fullObjectChecksum(
  alg: FullObjectAlgorithm,
  parts: readonly { checksum: string; size: number }[],
): string {
  const spec = CRC_SPECS[alg]
  // Parts mostly share one size: compute each shift factor once.
  const factors = new Map<number, [number, number]>()
  let hi = 0
  let lo = 0
  for (const part of parts) {
    if (!Number.isSafeInteger(part.size) || part.size < 0) {
      throw new RangeError(`invalid part size ${part.size}`)
    }
    const raw = decodeOrThrow(alg, part.checksum)
    let factor = factors.get(part.size)
    if (factor === undefined) {
      factor = shiftFactor(spec, part.size)
      factors.set(part.size, factor)
    }
    ;[hi, lo] = mulmod(spec, factor[0], factor[1], hi, lo)
    if (spec.width === 64) {
      hi ^= raw.readUInt32BE(0)
      lo ^= raw.readUInt32BE(4)
    } else {
      lo ^= raw.readUInt32BE(0)
    }
  }
  const out = Buffer.allocUnsafe(spec.width / 8)
  if (spec.width === 64) {
    out.writeUInt32BE(hi >>> 0, 0)
    out.writeUInt32BE(lo >>> 0, 4)
  } else {
    out.writeUInt32BE(lo >>> 0, 0)
  }
  return out.toString('base64')
}

/**
 * The ETag of a multipart object, unquoted: the MD5 of the concatenated binary MD5s of its
 * parts (hex, in part order), hex, then `-<part count>`.
 */
export function multipartEtag(partMd5Hex: readonly string[]): string {
  if (partMd5Hex.length === 0) throw new RangeError('a multipart object has at least one part')
  const md5 = createMd5()
  for (const hex of partMd5Hex) {
    if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new RangeError(`not an MD5 in hex: ${hex}`)
    md5.update(Buffer.from(hex, 'hex'))
  }
  return `${md5.digest().toString('hex')}-${partMd5Hex.length}`
}
