import { createHash, createHmac } from 'node:crypto'
import t, { type Test } from 'tap'
import { AwsChunkedDecoder, type AwsChunkedInit } from '../src/auth/aws-chunked.ts'
import { type SigV4Auth, verifySigV4 } from '../src/auth/sigv4.ts'
import { S3_ERRORS, S3Error, type S3ErrorCode } from '../src/s3/errors.ts'

type Mode = AwsChunkedInit['mode']
const MODES: Mode[] = ['streaming-signed', 'streaming-signed-trailer', 'streaming-unsigned-trailer']
const EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'

const sha256 = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex')
const hmac = (key: string | Uint8Array, data: string) =>
  createHmac('sha256', key).update(data).digest()

/** A SigV4Auth as verifySigV4 would return it, built from the spec for the decoder tests. */
function authFor(mode: Mode, seed = 'c'.repeat(64)): SigV4Auth {
  const date = new Date('2024-03-01T12:00:00Z')
  const secret = 'test/secret+key'
  return {
    accessKeyId: 'AKIDCHUNKED',
    region: 'eu-west-1',
    service: 's3',
    date,
    scope: '20240301/eu-west-1/s3/aws4_request',
    signature: seed,
    signedHeaders: ['host', 'x-amz-content-sha256', 'x-amz-date'],
    presigned: false,
    payload: mode,
    signingKey: hmac(
      hmac(hmac(hmac(`AWS4${secret}`, '20240301'), 'eu-west-1'), 's3'),
      'aws4_request',
    ),
  }
}

interface Body {
  mode: Mode
  data: Uint8Array
  /** Sizes of the data chunks; they must add up to the data length. */
  sizes: number[]
  auth?: SigV4Auth
  trailers?: Array<[string, string]>
  /** Leave out the empty line that closes the body. */
  noFinalCrlf?: boolean
}

/** An aws-chunked encoder written from the S3 documentation, to feed the decoder. */
function encode(b: Body): Buffer {
  const signed = b.mode !== 'streaming-unsigned-trailer'
  const auth = b.auth ?? authFor(b.mode)
  const prefix = (algorithm: string) =>
    `${algorithm}\n20240301T120000Z\n${auth.scope}\n`.replace(
      '20240301T120000Z',
      auth.date
        .toISOString()
        .replace(/[-:]/g, '')
        .replace(/\.\d{3}/, ''),
    )
  let previous = auth.signature
  const parts: Array<string | Uint8Array> = []
  let offset = 0
  for (const size of [...b.sizes, 0]) {
    const chunk = b.data.subarray(offset, offset + size)
    offset += size
    if (signed) {
      const toSign = `${prefix('AWS4-HMAC-SHA256-PAYLOAD')}${previous}\n${EMPTY}\n${sha256(chunk)}`
      previous = hmac(auth.signingKey, toSign).toString('hex')
      parts.push(`${size.toString(16)};chunk-signature=${previous}\r\n`)
    } else {
      parts.push(`${size.toString(16)}\r\n`)
    }
    if (size > 0) parts.push(chunk, '\r\n')
  }
  if (offset !== b.data.length) throw new Error('chunk sizes do not add up')
  const trailers = b.trailers ?? []
  for (const [name, value] of trailers) parts.push(`${name}:${value}\r\n`)
  if (b.mode === 'streaming-signed-trailer' && trailers.length > 0) {
    const canonical = trailers.map(([name, value]) => `${name}:${value}\n`).join('')
    const toSign = `${prefix('AWS4-HMAC-SHA256-TRAILER')}${previous}\n${sha256(canonical)}`
    parts.push(`x-amz-trailer-signature:${hmac(auth.signingKey, toSign).toString('hex')}\r\n`)
  }
  if (!b.noFinalCrlf) parts.push('\r\n')
  return Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : p)))
}

function decoderFor(b: Body, extra: Partial<AwsChunkedInit> = {}): AwsChunkedDecoder {
  return new AwsChunkedDecoder({
    mode: b.mode,
    ...(b.mode === 'streaming-unsigned-trailer' ? {} : { auth: b.auth ?? authFor(b.mode) }),
    decodedLength: b.data.length,
    expectTrailers: (b.trailers ?? []).map(([name]) => name),
    // These bodies use tiny chunks to test the framing; the 8 KiB rule has its own test.
    minChunkBytes: 1,
    ...extra,
  })
}

async function* pieces(parts: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const part of parts) yield part
}

async function decodeAll(decoder: AwsChunkedDecoder, parts: Uint8Array[]): Promise<Buffer> {
  const out: Uint8Array[] = []
  for await (const chunk of decoder.decode(pieces(parts))) out.push(chunk)
  return Buffer.concat(out)
}

/** Splits a buffer at the given offsets (views, not copies). */
function split(body: Buffer, at: number[]): Buffer[] {
  const out: Buffer[] = []
  let from = 0
  for (const to of [...at].sort((a, b) => a - b)) {
    out.push(body.subarray(from, to))
    from = to
  }
  out.push(body.subarray(from))
  return out
}

async function failure(p: Promise<unknown>): Promise<S3Error> {
  try {
    await p
  } catch (err) {
    if (err instanceof S3Error) return err
    throw err
  }
  throw new Error('expected decoding to fail')
}

async function rejects(
  t: Test,
  p: Promise<unknown>,
  code: S3ErrorCode,
  message?: RegExp,
): Promise<S3Error> {
  const err = await failure(p)
  t.equal(err.code, code, `code ${code}`)
  t.equal(err.status, S3_ERRORS[code].status)
  t.ok(err.message.length > 0, 'has a message')
  if (message) t.match(err.message, message)
  return err
}

const CRC = ['x-amz-checksum-crc32', 'AAAAAA=='] as [string, string]

function smallBody(mode: Mode): Body {
  return {
    mode,
    data: Buffer.from('hello, chunked world'),
    sizes: [7, 1, 12],
    ...(mode === 'streaming-signed' ? {} : { trailers: [CRC] }),
  }
}

// --- AWS's published examples ---------------------------------------------------------------

const DOC_SEED = '4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9'
const DOC_CHUNK_1 = 'ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648'
const DOC_CHUNK_2 = '0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497'
const DOC_FINAL = 'b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9'

/** The seed request of AWS's chunked PUT example, verified to get its signing key. */
async function docAuth(): Promise<SigV4Auth> {
  return verifySigV4(
    {
      method: 'PUT',
      path: '/examplebucket/chunkObject.txt',
      query: '',
      headers: {
        'content-encoding': 'aws-chunked',
        'content-length': '66824',
        host: 's3.amazonaws.com',
        'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
        'x-amz-date': '20130524T000000Z',
        'x-amz-decoded-content-length': '66560',
        'x-amz-storage-class': 'REDUCED_REDUNDANCY',
        authorization: `AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature=${DOC_SEED}`,
      },
    },
    {
      lookupSecret: async () => 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
      now: new Date('2013-05-24T00:00:00Z'),
    },
  )
}

function docBody(extra = ''): Buffer {
  const a = (n: number) => 'a'.repeat(n)
  return Buffer.from(
    `10000;chunk-signature=${DOC_CHUNK_1}\r\n${a(65536)}\r\n` +
      `400;chunk-signature=${DOC_CHUNK_2}\r\n${a(1024)}\r\n` +
      `0;chunk-signature=${DOC_FINAL}\r\n${extra}`,
    'latin1',
  )
}

t.test('AWS example: the 66560-byte chunked PUT decodes and verifies', async (t) => {
  const auth = await docAuth()
  t.equal(auth.signature, DOC_SEED)
  const body = docBody('\r\n')
  t.equal(body.length, 66824, 'the Content-Length of the example')
  const decoder = new AwsChunkedDecoder({
    mode: 'streaming-signed',
    auth,
    decodedLength: 66560,
    minChunkBytes: 1,
  })
  const out = await decodeAll(decoder, [body])
  t.equal(out.length, 66560)
  t.ok(out.equals(Buffer.alloc(66560, 'a')))
  t.same(decoder.trailers, {})

  // The test encoder computes the same signatures from the spec.
  const encoded = encode({
    mode: 'streaming-signed',
    data: Buffer.alloc(66560, 'a'),
    sizes: [65536, 1024],
    auth,
  })
  t.ok(encoded.equals(body), 'the test encoder reproduces the example body')

  const bad = Buffer.from(body)
  bad[100] = 0x62
  const err = await rejects(
    t,
    decodeAll(new AwsChunkedDecoder({ mode: 'streaming-signed', auth, minChunkBytes: 1 }), [bad]),
    'SignatureDoesNotMatch',
  )
  t.match(err.extra.StringToSign, `AWS4-HMAC-SHA256-PAYLOAD\n20130524T000000Z\n`)
  t.equal(err.extra.SignatureProvided, DOC_CHUNK_1)
  t.equal(err.extra.AWSAccessKeyId, 'AKIAIOSFODNN7EXAMPLE')
})

t.test('aws-c-auth trailer vector: x-amz-trailer-signature over three trailers', async (t) => {
  // The CRT's chunk-signer test signs these trailers after the example's final chunk.
  const auth = await docAuth()
  const trailerSignature = 'df5735bd9f3295cd9386572292562fefc93ba94e80a0a1ddcbd652c4e0a75e6c'
  const body = docBody(
    `first:1st\r\nsecond:2nd\r\nthird:3rd\r\nx-amz-trailer-signature:${trailerSignature}\r\n\r\n`,
  )
  const decoder = new AwsChunkedDecoder({
    mode: 'streaming-signed-trailer',
    auth,
    decodedLength: 66560,
    expectTrailers: ['first', 'second', 'third'],
  })
  const out = await decodeAll(decoder, [body])
  t.equal(out.length, 66560)
  t.same(decoder.trailers, { first: '1st', second: '2nd', third: '3rd' })

  const tampered = Buffer.from(body.toString('latin1').replace('2nd', '2nD'), 'latin1')
  const err = await rejects(
    t,
    decodeAll(
      new AwsChunkedDecoder({
        mode: 'streaming-signed-trailer',
        auth,
        expectTrailers: ['first', 'second', 'third'],
      }),
      [tampered],
    ),
    'SignatureDoesNotMatch',
  )
  t.match(err.extra.StringToSign, `AWS4-HMAC-SHA256-TRAILER\n20130524T000000Z\n`)
  t.match(err.extra.StringToSign, DOC_FINAL)
})

// --- Incremental parsing --------------------------------------------------------------------

t.test('input split at every byte boundary decodes the same', async (t) => {
  for (const mode of MODES) {
    const b = smallBody(mode)
    const body = encode(b)
    for (let i = 0; i <= body.length; i++) {
      const decoder = decoderFor(b)
      const out = await decodeAll(decoder, split(body, [i]))
      if (!out.equals(b.data)) t.fail(`${mode}: split at ${i} decoded ${JSON.stringify(`${out}`)}`)
      if (mode !== 'streaming-signed' && decoder.trailers[CRC[0]] !== CRC[1]) {
        t.fail(`${mode}: split at ${i} lost the trailer`)
      }
    }
    // And split at every pair of boundaries, and one byte at a time.
    for (let i = 1; i < body.length; i += 5) {
      for (let j = i; j < body.length; j++) {
        const out = await decodeAll(decoderFor(b), split(body, [i, j]))
        if (!out.equals(b.data)) t.fail(`${mode}: split at ${i} and ${j}`)
      }
    }
    const bytes = [...body].map((byte) => Uint8Array.of(byte))
    const decoder = decoderFor(b)
    t.ok((await decodeAll(decoder, bytes)).equals(b.data), `${mode}: one byte at a time`)
    t.same(decoder.trailers, mode === 'streaming-signed' ? {} : { [CRC[0]]: CRC[1] })
  }
})

t.test('a large body in random splits decodes the same, as views of the input', async (t) => {
  let seed = 42
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31
    return seed % n
  }
  const data = Buffer.alloc(1024 * 1024 + 777)
  for (let i = 0; i < data.length; i++) data[i] = random(256)
  const sizes: number[] = []
  for (let left = data.length; left > 0; left -= sizes.at(-1) ?? 0) {
    sizes.push(Math.min(left, 64 * 1024 + random(3) * 8192))
  }
  for (const mode of MODES) {
    const b: Body = { mode, data, sizes, trailers: mode === 'streaming-signed' ? [] : [CRC] }
    const body = encode(b)
    for (let round = 0; round < 12; round++) {
      const cuts = Array.from({ length: 1 + random(200) }, () => random(body.length))
      const parts = split(body, cuts)
      const decoder = decoderFor(b)
      const out: Uint8Array[] = []
      let views = 0
      for await (const chunk of decoder.decode(pieces(parts))) {
        out.push(chunk)
        if (parts.some((p) => p.buffer === chunk.buffer)) views++
      }
      t.equal(views, out.length, `${mode} round ${round}: every output is a view of the input`)
      t.equal(sha256(Buffer.concat(out)), sha256(data), `${mode} round ${round}: same bytes`)
    }
  }
})

// --- Signatures -----------------------------------------------------------------------------

t.test('tampering with chunk data, signatures or order fails', async (t) => {
  for (const mode of ['streaming-signed', 'streaming-signed-trailer'] as const) {
    const b: Body = {
      mode,
      data: Buffer.alloc(30_000, 7),
      sizes: [10_000, 10_000, 10_000],
      ...(mode === 'streaming-signed-trailer' ? { trailers: [CRC] } : {}),
    }
    const body = encode(b)
    const text = body.toString('latin1')
    const sigs = [...text.matchAll(/chunk-signature=([0-9a-f]{64})/g)].map((m) => m[1] ?? '')
    t.equal(sigs.length, 4)

    const flipped = Buffer.from(body)
    // A byte in the middle of the first chunk's data.
    const inData = text.indexOf('\r\n') + 2 + 5000
    flipped[inData] = (flipped[inData] ?? 0) ^ 1
    const variants: Array<[string, Buffer]> = [
      ['data byte', flipped],
      ['first signature', Buffer.from(text.replace(sigs[0] ?? '', 'f'.repeat(64)), 'latin1')],
      ['final signature', Buffer.from(text.replace(sigs[3] ?? '', 'f'.repeat(64)), 'latin1')],
      ['swapped signatures', Buffer.from(text.replace(sigs[0] ?? '', sigs[1] ?? ''), 'latin1')],
    ]
    if (mode === 'streaming-signed-trailer') {
      variants.push(['trailer value', Buffer.from(text.replace('AAAAAA==', 'AAAAAB=='), 'latin1')])
      variants.push([
        'trailer signature',
        Buffer.from(text.replace(/(x-amz-trailer-signature:)[0-9a-f]/, '$1x'), 'latin1'),
      ])
    }
    for (const [what, bad] of variants) {
      const err = await rejects(t, decodeAll(decoderFor(b), [bad]), 'SignatureDoesNotMatch')
      t.ok(err.extra.StringToSign, `${mode}: ${what}`)
    }
    // Another seed (another request) does not verify the same body.
    const other = { ...b, auth: authFor(mode, 'd'.repeat(64)) }
    await rejects(t, decodeAll(decoderFor(other), [body]), 'SignatureDoesNotMatch')
  }
})

t.test('data is yielded chunk by chunk before a later chunk fails', async (t) => {
  const b: Body = { mode: 'streaming-signed', data: Buffer.alloc(20, 1), sizes: [10, 10] }
  const text = encode(b).toString('latin1')
  const sig = [...text.matchAll(/chunk-signature=([0-9a-f]{64})/g)][1]?.[1] ?? ''
  const bad = Buffer.from(text.replace(sig, '0'.repeat(64)), 'latin1')
  const got: number[] = []
  const err = await failure(
    (async () => {
      for await (const chunk of decoderFor(b).decode(pieces([bad]))) got.push(chunk.length)
    })(),
  )
  t.equal(err.code, 'SignatureDoesNotMatch')
  t.same(got, [10, 10], 'the bad chunk was passed on before its signature was checked')
})

// --- Framing errors -------------------------------------------------------------------------

t.test('a truncated body is IncompleteBody, except where a client may stop early', async (t) => {
  for (const mode of MODES) {
    const b = smallBody(mode)
    const body = encode(b)
    const text = body.toString('latin1')
    // The body may end without its closing empty line (after the final chunk header when
    // there is no trailer, after the last trailer line otherwise).
    const earlyEnd = text.length - 2
    for (let length = 0; length < body.length; length++) {
      const outcome = await decodeAll(decoderFor(b), [body.subarray(0, length)]).then(
        () => 'ok',
        (err: S3Error) => err.code,
      )
      const want = length === earlyEnd ? 'ok' : 'IncompleteBody'
      if (outcome !== want) t.fail(`${mode}: truncated to ${length}: ${outcome}, want ${want}`)
    }
    const err = await rejects(
      t,
      decodeAll(decoderFor(b), [body.subarray(0, 12)]),
      'IncompleteBody',
      /terminated unexpectedly/,
    )
    t.ok(err, mode)
  }
})

t.test('malformed framing', async (t) => {
  const signed = smallBody('streaming-signed')
  const signedText = encode(signed).toString('latin1')
  const unsigned = smallBody('streaming-unsigned-trailer')
  const unsignedText = encode(unsigned).toString('latin1')
  const cases: Array<[string, Body, string, S3ErrorCode, RegExp]> = [
    ['size not hex', signed, signedText.replace(/^7;/, 'x7;'), 'IncompleteBody', /chunk 1/],
    ['empty size', signed, signedText.replace(/^7;/, ';'), 'IncompleteBody', /header/],
    [
      'no chunk signature',
      signed,
      signedText.replace(/^7;chunk-signature=[0-9a-f]{64}/, '7'),
      'IncompleteBody',
      /chunk-signature/,
    ],
    [
      'short signature',
      signed,
      signedText.replace(/^(7;chunk-signature=[0-9a-f]{63})[0-9a-f]/, '$1'),
      'IncompleteBody',
      /header/,
    ],
    [
      'chunk extension in unsigned mode',
      unsigned,
      unsignedText.replace(/^7\r\n/, '7;ext=1\r\n'),
      'IncompleteBody',
      /<hex-size>/,
    ],
    [
      'size too small for the data',
      unsigned,
      unsignedText.replace(/^7\r\n/, '6\r\n'),
      'IncompleteBody',
      /not followed by CRLF/,
    ],
    [
      'LF without CR',
      unsigned,
      unsignedText.replace(/^7\r\n/, '7\n'),
      'IncompleteBody',
      /without CR/,
    ],
    [
      'line too long',
      unsigned,
      `${'0'.repeat(5000)}7\r\n${unsignedText.slice(3)}`,
      'IncompleteBody',
      /longer than 4096 bytes/,
    ],
    ['bytes after the end', signed, `${signedText}x`, 'IncompleteBody', /after the end/],
    [
      'trailer in streaming-signed mode',
      signed,
      signedText.replace(/\r\n\r\n$/, '\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n'),
      'IncompleteBody',
      /instead of an empty line/,
    ],
  ]
  for (const [what, b, text, code, message] of cases) {
    const err = await rejects(
      t,
      decodeAll(decoderFor(b), [Buffer.from(text, 'latin1')]),
      code,
      message,
    )
    t.ok(err, what)
  }
  await rejects(
    t,
    decodeAll(decoderFor(unsigned, { maxChunkBytes: 6 }), [Buffer.from(unsignedText, 'latin1')]),
    'InvalidRequest',
    /at most 6 bytes/,
  )
})

t.test('x-amz-decoded-content-length must match', async (t) => {
  for (const mode of MODES) {
    const b = smallBody(mode)
    const body = encode(b)
    const short = await rejects(
      t,
      decodeAll(decoderFor(b, { decodedLength: b.data.length + 1 }), [body]),
      'IncompleteBody',
      /x-amz-decoded-content-length/,
    )
    t.same(short.extra, { NumberBytesExpected: '21', NumberBytesProvided: '20' })
    const got: Uint8Array[] = []
    const long = await failure(
      (async () => {
        const decoder = decoderFor(b, { decodedLength: 10 })
        for await (const chunk of decoder.decode(pieces([body]))) got.push(chunk)
      })(),
    )
    t.equal(long.code, 'IncompleteBody')
    t.same(long.extra, { NumberBytesExpected: '10', NumberBytesProvided: '20' })
    t.equal(Buffer.concat(got).length, 8, 'nothing past the declared length was passed on')
  }
})

t.test('trailers', async (t) => {
  const mode = 'streaming-unsigned-trailer'
  const data = Buffer.from('payload')
  const good: Body = { mode, data, sizes: [7], trailers: [CRC] }

  // The JS SDK's body without a checksum ends right after "0\r\n".
  const bare = new AwsChunkedDecoder({ mode, decodedLength: 7, minChunkBytes: 1 })
  t.ok((await decodeAll(bare, [Buffer.from('7\r\npayload\r\n0\r\n')])).equals(data))
  t.same(bare.trailers, {})
  const closed = new AwsChunkedDecoder({ mode, decodedLength: 7, minChunkBytes: 1 })
  t.ok((await decodeAll(closed, [Buffer.from('7\r\npayload\r\n0\r\n\r\n')])).equals(data))
  // ... and a trailer line may be the last thing sent.
  const open = decoderFor({ ...good, noFinalCrlf: true })
  t.ok((await decodeAll(open, [encode({ ...good, noFinalCrlf: true })])).equals(data))
  t.same(open.trailers, { 'x-amz-checksum-crc32': 'AAAAAA==' })

  // Names are case-insensitive and values trimmed.
  const spaced = decoderFor(good)
  await decodeAll(spaced, [
    Buffer.from('7\r\npayload\r\n0\r\nX-Amz-Checksum-CRC32 :  AAAAAA== \r\n\r\n'),
  ])
  t.same(spaced.trailers, { 'x-amz-checksum-crc32': 'AAAAAA==' })

  const body = (trailer: string) => [Buffer.from(`7\r\npayload\r\n0\r\n${trailer}\r\n`)]
  const cases: Array<[string, string, S3ErrorCode, RegExp]> = [
    ['not announced', 'x-amz-checksum-sha1:AAAA\r\n', 'MalformedTrailerError', /not announced/],
    ['missing', '', 'MalformedTrailerError', /is missing/],
    [
      'repeated',
      'x-amz-checksum-crc32:A\r\nx-amz-checksum-crc32:B\r\n',
      'MalformedTrailerError',
      /repeated/,
    ],
    ['no colon', 'x-amz-checksum-crc32\r\n', 'MalformedTrailerError', /name:value/],
    ['empty name', ':AAAA\r\n', 'MalformedTrailerError', /name:value/],
    [
      'signature in an unsigned body',
      `x-amz-checksum-crc32:A\r\nx-amz-trailer-signature:${'0'.repeat(64)}\r\n`,
      'MalformedTrailerError',
      /unsigned body/,
    ],
  ]
  for (const [what, trailer, code, message] of cases) {
    const err = await rejects(t, decodeAll(decoderFor(good), body(trailer)), code, message)
    t.match(err.message, /trailing data that was not well-formed/, what)
  }
  // Truncated before the announced trailer: the body is incomplete.
  await rejects(
    t,
    decodeAll(decoderFor(good), [Buffer.from('7\r\npayload\r\n0\r\n')]),
    'IncompleteBody',
    /inside the trailer/,
  )

  // Signed trailers need their signature, and nothing may follow it.
  const signedBody: Body = { ...good, mode: 'streaming-signed-trailer' }
  const signedText = encode(signedBody).toString('latin1')
  const unsignedTrailer = signedText.replace(/x-amz-trailer-signature:[0-9a-f]{64}\r\n/, '')
  await rejects(
    t,
    decodeAll(decoderFor(signedBody), [Buffer.from(unsignedTrailer, 'latin1')]),
    'MalformedTrailerError',
    /x-amz-trailer-signature is missing/,
  )
  await rejects(
    t,
    decodeAll(decoderFor(signedBody), [Buffer.from(unsignedTrailer.slice(0, -2), 'latin1')]),
    'IncompleteBody',
  )
  await rejects(
    t,
    decodeAll(decoderFor(signedBody), [
      Buffer.from(signedText.replace(/\r\n$/, 'x-amz-meta:1\r\n\r\n'), 'latin1'),
    ]),
    'MalformedTrailerError',
    /follows x-amz-trailer-signature/,
  )
  // A signed-trailer body with no trailers at all.
  const none: Body = { mode: 'streaming-signed-trailer', data, sizes: [7] }
  t.ok((await decodeAll(decoderFor(none), [encode(none)])).equals(data))
})

t.test('constructor checks and single use', async (t) => {
  t.throws(() => new AwsChunkedDecoder({ mode: 'streaming-signed' }), TypeError)
  t.throws(() => new AwsChunkedDecoder({ mode: 'streaming-signed-trailer' }), TypeError)
  const mode = 'streaming-unsigned-trailer'
  t.throws(() => new AwsChunkedDecoder({ mode, maxChunkBytes: 0 }), TypeError)
  t.throws(() => new AwsChunkedDecoder({ mode, decodedLength: -1 }), TypeError)
  t.throws(() => new AwsChunkedDecoder({ mode: 'chunked' as Mode }), TypeError)
  const decoder = new AwsChunkedDecoder({ mode })
  await decodeAll(decoder, [Buffer.from('0\r\n\r\n')])
  await t.rejects(decodeAll(decoder, [Buffer.from('0\r\n\r\n')]), TypeError)
  // An empty body (no chunks at all) is incomplete.
  await rejects(t, decodeAll(new AwsChunkedDecoder({ mode }), []), 'IncompleteBody')
  // An empty object is just the final chunk.
  const empty = new AwsChunkedDecoder({ mode, decodedLength: 0 })
  t.equal((await decodeAll(empty, [Buffer.from('0\r\n\r\n')])).length, 0)
})

t.test('only the last data chunk may be under 8 KiB, as in S3', async (t) => {
  const mode = 'streaming-unsigned-trailer' as const
  const frame = (sizes: number[]) => {
    const parts: Buffer[] = []
    for (const n of sizes)
      parts.push(Buffer.from(`${n.toString(16)}\r\n`), Buffer.alloc(n, 97), Buffer.from('\r\n'))
    parts.push(Buffer.from('0\r\n\r\n'))
    return Buffer.concat(parts)
  }
  const ok = new AwsChunkedDecoder({ mode, decodedLength: 8192 + 10 })
  const out = await decodeAll(ok, [frame([8192, 10])])
  t.equal(out.length, 8202, 'a short last chunk is fine')
  const err = await rejects(
    t,
    decodeAll(new AwsChunkedDecoder({ mode, decodedLength: 20 }), [frame([10, 10])]),
    'InvalidChunkSizeError',
    /Only the last chunk/,
  )
  t.same([err.extra.Chunk, err.extra.BadChunkSize], ['1', '10'])
})
