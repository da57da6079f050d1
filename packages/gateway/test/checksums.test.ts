import { crc32 as zlibCrc32 } from 'node:zlib'
import { crc32c as awsCrc32c } from '@aws-crypto/crc32c'
import { Crc64Nvme } from '@aws-sdk/crc64-nvme'
import t from 'tap'
import {
  BodyDigests,
  CHECKSUM_ALGORITHMS,
  type ChecksumAlgorithm,
  type ChecksumExpectation,
  checkPartChecksum,
  checksumHeader,
  compositeChecksum,
  createChecksum,
  createMd5,
  decodeChecksum,
  type FullObjectAlgorithm,
  fullObjectChecksum,
  multipartEtag,
  parseChecksumHeaders,
  parseUploadChecksum,
} from '../src/s3/checksums.ts'
import { S3Error } from '../src/s3/errors.ts'
import { rng } from './seeded-random.ts'

const SEED = Number(process.env.CHECKSUM_SEED ?? 0x5eed)
const random = rng(SEED)
const int = (n: number): number => Math.floor(random() * n)
function bytes(n: number): Buffer {
  const b = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i++) b[i] = int(256)
  return b
}

function oneShot(alg: ChecksumAlgorithm, data: Uint8Array): string {
  const h = createChecksum(alg)
  h.update(data)
  return h.digest()
}
const hex = (b64: string): string => Buffer.from(b64, 'base64').toString('hex')

/** Runs `fn` and gives the S3Error it throws. */
function s3error(fn: () => unknown): S3Error {
  try {
    fn()
  } catch (err) {
    if (err instanceof S3Error) return err
    throw err
  }
  throw new Error('expected an S3Error')
}

const CHECK = Buffer.from('123456789')

t.test('check values of each algorithm', async (t) => {
  // The CRC catalogue's check values, and SHA of "abc" from FIPS 180.
  t.equal(hex(oneShot('CRC32', CHECK)), 'cbf43926')
  t.equal(hex(oneShot('CRC32C', CHECK)), 'e3069283')
  t.equal(hex(oneShot('CRC64NVME', CHECK)), 'ae8b14860a799888')
  t.equal(hex(oneShot('SHA1', Buffer.from('abc'))), 'a9993e364706816aba3e25717850c26c9cd0d89d')
  t.equal(
    hex(oneShot('SHA256', Buffer.from('abc'))),
    'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
  )
})

t.test('values are base64 of the big-endian digest, as S3 sends them', async (t) => {
  // The values AWS accepts for the body "123456789".
  t.equal(oneShot('CRC32', CHECK), 'y/Q5Jg==')
  t.equal(oneShot('CRC32C', CHECK), '4waSgw==')
  t.equal(oneShot('CRC64NVME', CHECK), 'rosUhgp5mIg=')
  t.equal(oneShot('SHA1', CHECK), '98O8HYCOBHMq32eZZczDTKeuNEE=')
  t.equal(oneShot('SHA256', CHECK), 'FeKw08M4keuw8e9gnsQZQgwg4yDOlMZfvIwzEkSOsiU=')
  const empty = Buffer.alloc(0)
  t.equal(oneShot('CRC32', empty), 'AAAAAA==')
  t.equal(oneShot('CRC32C', empty), 'AAAAAA==')
  t.equal(oneShot('CRC64NVME', empty), 'AAAAAAAAAAA=')
  t.equal(oneShot('SHA1', empty), '2jmj7l5rSw0yVb/vlWAYkK/YBwk=')
  t.equal(oneShot('SHA256', empty), '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=')
  t.equal(createChecksum('CRC32').digest(), 'AAAAAA==', 'no update at all')
  t.equal(checksumHeader('CRC64NVME'), 'x-amz-checksum-crc64nvme')
})

t.test('CRC32C and CRC64NVME agree with the AWS packages', async (t) => {
  const big = bytes(70_000)
  for (let i = 0; i < 200; i++) {
    // Lengths around the 16-byte stride, and views at odd offsets.
    const len = i < 100 ? i : int(70_000)
    const start = int(big.length - len + 1)
    const data = big.subarray(start, start + len)
    const want32c = Buffer.alloc(4)
    want32c.writeUInt32BE(awsCrc32c(data))
    const c64 = new Crc64Nvme()
    c64.update(data)
    const want64 = Buffer.from(await c64.digest())
    if (oneShot('CRC32C', data) !== want32c.toString('base64')) {
      t.fail(`CRC32C of ${len} bytes at ${start} (seed ${SEED})`)
      return
    }
    if (oneShot('CRC64NVME', data) !== want64.toString('base64')) {
      t.fail(`CRC64NVME of ${len} bytes at ${start} (seed ${SEED})`)
      return
    }
  }
  t.pass('200 lengths agree')
})

t.test('updating piece by piece gives the one-shot value', async (t) => {
  const data = bytes(100_003)
  for (const alg of CHECKSUM_ALGORITHMS) {
    const want = oneShot(alg, data)
    for (let round = 0; round < 20; round++) {
      const h = createChecksum(alg)
      let at = 0
      while (at < data.length) {
        // Small pieces (0..40 bytes) as often as large ones.
        const n = Math.min(data.length - at, random() < 0.5 ? int(41) : int(20_000))
        h.update(data.subarray(at, at + n))
        at += n
      }
      const got = h.digest()
      if (got !== want) {
        t.fail(`${alg} round ${round} (seed ${SEED})`)
        break
      }
    }
    t.pass(`${alg}: 20 random splits`)
  }
})

t.test('decodeChecksum accepts only the canonical base64 of the digest size', async (t) => {
  t.same(decodeChecksum('CRC32', 'y/Q5Jg=='), Buffer.from('cbf43926', 'hex'))
  // What AWS refuses for CRC32 (Value for x-amz-checksum-crc32 header is invalid.).
  for (const bad of [
    'y/Q5Jh==', // non-zero padding bits
    'y/Q5Jg', // unpadded
    'short===',
    'shrt',
    'toolong=',
    '^^^^^^==',
    'y^/^Q5^J^g==',
    'cbf43926', // hex
    '',
    'rosUhgp5mIg=', // a CRC64NVME
  ]) {
    t.equal(decodeChecksum('CRC32', bad), undefined, JSON.stringify(bad))
  }
  t.ok(decodeChecksum('CRC64NVME', 'rosUhgp5mIg='))
  t.ok(decodeChecksum('SHA256', 'FeKw08M4keuw8e9gnsQZQgwg4yDOlMZfvIwzEkSOsiU='))
  t.equal(decodeChecksum('SHA256', 'FeKw08M4keuw8e9gnsQZQgwg4yDOlMZfvIwzEkSOsiV='), undefined)
})

t.test('FULL_OBJECT: combined part CRCs equal the CRC of the whole object', async (t) => {
  const algs: FullObjectAlgorithm[] = ['CRC32', 'CRC32C', 'CRC64NVME']
  for (const alg of algs) {
    for (let round = 0; round < 30; round++) {
      const count = 1 + int(8)
      const parts = Array.from({ length: count }, () => {
        const r = random()
        return bytes(r < 0.2 ? 0 : r < 0.5 ? int(20) : int(50_000))
      })
      const whole = Buffer.concat(parts)
      const got = fullObjectChecksum(
        alg,
        parts.map((p) => ({ checksum: oneShot(alg, p), size: p.length })),
      )
      const want = oneShot(alg, whole)
      if (got !== want) {
        t.fail(`${alg} round ${round}: ${parts.map((p) => p.length)} (seed ${SEED})`)
        break
      }
    }
    t.pass(`${alg}: 30 random part lists, empty parts included`)
    const one = bytes(1234)
    t.equal(
      fullObjectChecksum(alg, [{ checksum: oneShot(alg, one), size: one.length }]),
      oneShot(alg, one),
      `${alg}: one part is its own checksum`,
    )
  }
  // Parts of 5 MiB and a tail, as clients send them; the CRC32 is also zlib's own.
  const big = [bytes(5 * 1024 * 1024), bytes(5 * 1024 * 1024), bytes(777)]
  const crc = fullObjectChecksum(
    'CRC32',
    big.map((p) => ({ checksum: oneShot('CRC32', p), size: p.length })),
  )
  const zlib = Buffer.alloc(4)
  zlib.writeUInt32BE(zlibCrc32(Buffer.concat(big)))
  t.equal(crc, zlib.toString('base64'), 'CRC32 of three parts, 10 MiB')
})

t.test('FULL_OBJECT: shifting past parts above 4 GiB is exact', async (t) => {
  // A part whose CRC is 0 multiplies by x^(8·size): the results for sizes a, b and a+b must
  // agree, with sizes past 2^32 (parts may be 5 GiB).
  for (const alg of ['CRC32', 'CRC32C', 'CRC64NVME'] as const) {
    const first = { checksum: oneShot(alg, CHECK), size: 9 }
    const zero = (size: number) => ({
      checksum: Buffer.alloc(alg === 'CRC64NVME' ? 8 : 4).toString('base64'),
      size,
    })
    const a = 2 ** 32 + 3
    const b = 5 * 2 ** 30 + 12_345
    t.equal(
      fullObjectChecksum(alg, [first, zero(a), zero(b)]),
      fullObjectChecksum(alg, [first, zero(a + b)]),
      alg,
    )
  }
  t.throws(() => fullObjectChecksum('CRC32', [{ checksum: 'y/Q5Jg==', size: -1 }]), RangeError)
  t.throws(() => fullObjectChecksum('CRC32', [{ checksum: 'nope', size: 1 }]), RangeError)
})

t.test('COMPOSITE: the algorithm over the raw part checksums, with the part count', async (t) => {
  const parts = [bytes(1000), bytes(0), bytes(33)]
  for (const alg of ['CRC32', 'CRC32C', 'SHA1', 'SHA256'] as const) {
    const sums = parts.map((p) => oneShot(alg, p))
    const raw = Buffer.concat(sums.map((s) => Buffer.from(s, 'base64')))
    t.equal(compositeChecksum(alg, sums), `${oneShot(alg, raw)}-3`, alg)
  }
  // Two parts of "123456789": CRC32 of cbf43926cbf43926, computed by zlib.
  const want = Buffer.alloc(4)
  want.writeUInt32BE(zlibCrc32(Buffer.from('cbf43926cbf43926', 'hex')))
  t.equal(compositeChecksum('CRC32', ['y/Q5Jg==', 'y/Q5Jg==']), `${want.toString('base64')}-2`)
  t.throws(() => compositeChecksum('SHA1', []), RangeError)
  t.throws(() => compositeChecksum('SHA1', ['y/Q5Jg==']), RangeError, 'a CRC32 is not a SHA1')
})

t.test('the multipart ETag', async (t) => {
  // Computed with coreutils: md5sum of each part, then md5sum of the joined binary digests.
  const zeros = createMd5()
  zeros.update(Buffer.alloc(5 * 1024 * 1024))
  const z = zeros.digest().toString('hex')
  t.equal(z, '5f363e0e58a95f06cbe9bbc662c5dfb6')
  const hello = '5eb63bbbe01eeed093cb22bb8f5acdc3' // "hello world"
  t.equal(multipartEtag([z, z, hello]), 'dcf1c8d64f5345722dcdd25b65d34d38-3')
  t.throws(() => multipartEtag([]), RangeError)
  t.throws(() => multipartEtag(['"5eb63bbbe01eeed093cb22bb8f5acdc3"']), RangeError)
})

t.test('parseChecksumHeaders: what a request asks for', async (t) => {
  t.same(parseChecksumHeaders({}), {})
  t.same(parseChecksumHeaders({ 'x-amz-checksum-crc32': 'y/Q5Jg==' }), {
    algorithm: 'CRC32',
    expected: 'y/Q5Jg==',
  })
  t.same(
    parseChecksumHeaders({
      'x-amz-checksum-crc64nvme': 'rosUhgp5mIg=',
      'x-amz-sdk-checksum-algorithm': 'CRC64NVME',
      'content-md5': 'JfnnlDI7RTiF9RgfG2JNCw==',
    }),
    {
      algorithm: 'CRC64NVME',
      expected: 'rosUhgp5mIg=',
      contentMd5: Buffer.from('25f9e794323b453885f5181f1b624d0b', 'hex'),
    },
  )
  t.same(
    parseChecksumHeaders({
      'x-amz-trailer': 'x-amz-checksum-crc32c',
      'x-amz-sdk-checksum-algorithm': 'crc32c',
    }),
    { algorithm: 'CRC32C', fromTrailer: 'x-amz-checksum-crc32c' },
  )
  t.same(
    parseChecksumHeaders({
      'x-amz-checksum-type': 'FULL_OBJECT',
      'x-amz-checksum-mode': 'ENABLED',
      'x-amz-checksum-sha1': '98O8HYCOBHMq32eZZczDTKeuNEE=',
    }),
    { algorithm: 'SHA1', expected: '98O8HYCOBHMq32eZZczDTKeuNEE=' },
    'x-amz-checksum-type and -mode are not checksum values',
  )
})

t.test('parseChecksumHeaders: the errors AWS gives', async (t) => {
  const cases: [string, Record<string, string>, string, string][] = [
    [
      'two checksums',
      { 'x-amz-checksum-crc32': 'y/Q5Jg==', 'x-amz-checksum-sha1': '98O8HYCOBHMq32eZZczDTKeuNEE=' },
      'InvalidRequest',
      'Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.',
    ],
    [
      'a checksum header and a checksum trailer',
      { 'x-amz-checksum-crc32': 'y/Q5Jg==', 'x-amz-trailer': 'x-amz-checksum-crc32c' },
      'InvalidRequest',
      'Expecting a single x-amz-checksum- header',
    ],
    [
      'an unknown x-amz-checksum- header',
      { 'x-amz-checksum-md4': 'AAAA' },
      'InvalidRequest',
      'The algorithm type you specified in x-amz-checksum- header is invalid.',
    ],
    [
      'a trailer that is not a checksum',
      { 'x-amz-trailer': 'x-amz-meta-foo' },
      'InvalidRequest',
      'The value specified in the x-amz-trailer header is not supported',
    ],
    [
      'a CRC32 with non-zero padding bits',
      { 'x-amz-checksum-crc32': 'y/Q5Jh==' },
      'InvalidRequest',
      'Value for x-amz-checksum-crc32 header is invalid.',
    ],
    [
      'a CRC32 of 5 bytes',
      { 'x-amz-checksum-crc32': 'toolong=' },
      'InvalidRequest',
      'Value for x-amz-checksum-crc32 header is invalid.',
    ],
    [
      'a SHA256 in hex',
      {
        'x-amz-checksum-sha256': '15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225',
      },
      'InvalidRequest',
      'Value for x-amz-checksum-sha256 header is invalid.',
    ],
    [
      'an algorithm other than the checksum sent',
      { 'x-amz-checksum-crc32': 'y/Q5Jg==', 'x-amz-sdk-checksum-algorithm': 'SHA1' },
      'InvalidRequest',
      'Value for x-amz-sdk-checksum-algorithm header is invalid.',
    ],
    [
      'an algorithm other than the trailer',
      { 'x-amz-trailer': 'x-amz-checksum-crc32', 'x-amz-sdk-checksum-algorithm': 'CRC32C' },
      'InvalidRequest',
      'Value for x-amz-sdk-checksum-algorithm header is invalid.',
    ],
    [
      'an unknown algorithm',
      { 'x-amz-checksum-crc32': 'y/Q5Jg==', 'x-amz-sdk-checksum-algorithm': 'invalidalgo' },
      'InvalidRequest',
      'Value for x-amz-sdk-checksum-algorithm header is invalid.',
    ],
    [
      'an algorithm and no checksum',
      { 'x-amz-sdk-checksum-algorithm': 'CRC32' },
      'InvalidRequest',
      'x-amz-sdk-checksum-algorithm specified, but no corresponding x-amz-checksum-* or x-amz-trailer headers were found.',
    ],
    [
      'a Content-MD5 that is not base64',
      { 'content-md5': 'not base64!' },
      'InvalidDigest',
      'The Content-MD5 you specified was invalid.',
    ],
    [
      'a Content-MD5 of 11 bytes',
      { 'content-md5': 'YWJyYWNhZGFicmE=' },
      'InvalidDigest',
      'The Content-MD5 you specified was invalid.',
    ],
    [
      'a Content-MD5 in hex',
      { 'content-md5': '25f9e794323b453885f5181f1b624d0b' },
      'InvalidDigest',
      'The Content-MD5 you specified was invalid.',
    ],
    [
      'an empty Content-MD5',
      { 'content-md5': '' },
      'InvalidDigest',
      'The Content-MD5 you specified was invalid.',
    ],
  ]
  for (const [name, headers, code, message] of cases) {
    const err = s3error(() => parseChecksumHeaders(headers))
    t.same([err.code, err.status, err.message], [code, 400, message], name)
  }
  const md5 = s3error(() => parseChecksumHeaders({ 'content-md5': 'abc' }))
  t.same(md5.extra, { 'Content-MD5': 'abc' }, 'InvalidDigest names the value')
})

/** Feeds `body` in two pieces and finishes. */
function digest(exp: ChecksumExpectation, body: Uint8Array, trailers?: Record<string, string>) {
  const d = new BodyDigests(exp)
  d.update(body.subarray(0, 4))
  d.update(body.subarray(4))
  return d.finish(trailers)
}

t.test('BodyDigests: digests of a body that matches', async (t) => {
  const plain = digest({}, CHECK)
  t.equal(plain.md5.toString('hex'), '25f9e794323b453885f5181f1b624d0b')
  t.same(plain.checksums, {}, 'no flexible checksum unless asked')

  for (const alg of CHECKSUM_ALGORITHMS) {
    const value = oneShot(alg, CHECK)
    const header = checksumHeader(alg)
    const exp = parseChecksumHeaders({ [header]: value, 'content-md5': 'JfnnlDI7RTiF9RgfG2JNCw==' })
    t.same(digest(exp, CHECK).checksums, { [alg]: value }, `${alg} in a header`)
    const trailed = parseChecksumHeaders({ 'x-amz-trailer': header })
    t.same(
      digest(trailed, CHECK, { [header]: value }).checksums,
      { [alg]: value },
      `${alg} trailer`,
    )
  }
  t.same(
    digest({ algorithm: 'CRC64NVME' }, CHECK).checksums,
    { CRC64NVME: 'rosUhgp5mIg=' },
    'an algorithm alone is computed and stored',
  )
})

t.test('BodyDigests: the errors AWS gives', async (t) => {
  const wrongMd5 = s3error(() =>
    digest(parseChecksumHeaders({ 'content-md5': '1B2M2Y8AsgTpgAmY7PhCfg==' }), CHECK),
  )
  t.same(
    [wrongMd5.code, wrongMd5.status, wrongMd5.message],
    ['BadDigest', 400, 'The Content-MD5 you specified did not match what we received.'],
  )
  t.same(wrongMd5.extra, {
    ExpectedDigest: '1B2M2Y8AsgTpgAmY7PhCfg==',
    CalculatedDigest: 'JfnnlDI7RTiF9RgfG2JNCw==',
  })

  // The wrong values AWS's own tests send: right size, another digest.
  const bad: Record<ChecksumAlgorithm, string> = {
    CRC32: 'z/Q5Jg==',
    CRC32C: '5waSgw==',
    CRC64NVME: 'sosUhgp5mIg=',
    SHA1: '+8O8HYCOBHMq32eZZczDTKeuNEE=',
    SHA256: 'GeKw08M4keuw8e9gnsQZQgwg4yDOlMZfvIwzEkSOsiU=',
  }
  for (const alg of CHECKSUM_ALGORITHMS) {
    const header = checksumHeader(alg)
    const message = `The ${alg} you specified did not match the calculated checksum.`
    const inHeader = s3error(() => digest(parseChecksumHeaders({ [header]: bad[alg] }), CHECK))
    t.same([inHeader.code, inHeader.status, inHeader.message], ['BadDigest', 400, message], alg)
    const trailed = parseChecksumHeaders({ 'x-amz-trailer': header })
    const inTrailer = s3error(() => digest(trailed, CHECK, { [header]: bad[alg] }))
    t.same([inTrailer.code, inTrailer.message], ['BadDigest', message], `${alg} trailer`)
  }

  const trailed = parseChecksumHeaders({ 'x-amz-trailer': 'x-amz-checksum-crc32' })
  const missing = s3error(() => digest(trailed, CHECK, {}))
  t.equal(missing.status, 400)
  t.equal(missing.code, 'MalformedTrailerError')
  t.equal(
    missing.message,
    'The request contained trailing data that was not well-formed or did not conform to our published schema.',
    'an announced trailer that never came',
  )
  t.equal(s3error(() => digest(trailed, CHECK)).message, missing.message, 'no trailers at all')
  const invalid = s3error(() => digest(trailed, CHECK, { 'x-amz-checksum-crc32': 'y/Q5Jg' }))
  t.same(
    [invalid.code, invalid.message],
    ['InvalidRequest', 'Value for x-amz-checksum-crc32 trailing header is invalid.'],
  )
})

t.test('CreateMultipartUpload checksum headers', async (t) => {
  t.equal(parseUploadChecksum({}), undefined)
  t.same(parseUploadChecksum({ 'x-amz-checksum-algorithm': 'SHA256' }), {
    algorithm: 'SHA256',
    type: 'COMPOSITE',
  })
  t.same(parseUploadChecksum({ 'x-amz-checksum-algorithm': 'CRC64NVME' }), {
    algorithm: 'CRC64NVME',
    type: 'FULL_OBJECT',
  })
  t.same(
    parseUploadChecksum({
      'x-amz-checksum-algorithm': 'crc32',
      'x-amz-checksum-type': 'FULL_OBJECT',
    }),
    { algorithm: 'CRC32', type: 'FULL_OBJECT' },
  )
  const cases: [Record<string, string>, string][] = [
    [
      { 'x-amz-checksum-algorithm': 'MD4', 'x-amz-checksum-type': 'BOGUS' },
      'Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]',
    ],
    [
      { 'x-amz-checksum-type': 'COMPOSITE' },
      'The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.',
    ],
    [
      { 'x-amz-checksum-algorithm': 'CRC32', 'x-amz-checksum-type': 'BOGUS' },
      'Value for x-amz-checksum-type header is invalid.',
    ],
    [
      { 'x-amz-checksum-algorithm': 'SHA256', 'x-amz-checksum-type': 'FULL_OBJECT' },
      'The FULL_OBJECT checksum type cannot be used with the sha256 checksum algorithm.',
    ],
    [
      { 'x-amz-checksum-algorithm': 'CRC64NVME', 'x-amz-checksum-type': 'COMPOSITE' },
      'The COMPOSITE checksum type cannot be used with the crc64nvme checksum algorithm.',
    ],
  ]
  for (const [headers, message] of cases) {
    const err = s3error(() => parseUploadChecksum(headers))
    t.same([err.code, err.status, err.message], ['InvalidRequest', 400, message], message)
  }
})

t.test('UploadPart in an upload created with a checksum', async (t) => {
  const composite = { algorithm: 'SHA1', type: 'COMPOSITE' } as const
  const full = { algorithm: 'CRC32C', type: 'FULL_OBJECT' } as const
  const sha1 = parseChecksumHeaders({ 'x-amz-checksum-sha1': '98O8HYCOBHMq32eZZczDTKeuNEE=' })
  t.equal(checkPartChecksum(composite, sha1), sha1)
  t.equal(checkPartChecksum(undefined, sha1), sha1, 'an upload without a checksum takes any')
  t.same(checkPartChecksum(full, {}), { algorithm: 'CRC32C' }, 'FULL_OBJECT: S3 computes it')
  const none = s3error(() => checkPartChecksum(composite, {}))
  t.same(
    [none.code, none.message],
    [
      'InvalidRequest',
      'Checksum Type mismatch occurred, expected checksum Type: sha1, actual checksum Type: null',
    ],
  )
  const other = s3error(() =>
    checkPartChecksum(composite, parseChecksumHeaders({ 'x-amz-checksum-crc32c': '4waSgw==' })),
  )
  t.equal(
    other.message,
    'Checksum Type mismatch occurred, expected checksum Type: sha1, actual checksum Type: crc32c',
  )
})
