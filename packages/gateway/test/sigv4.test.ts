import { createHash, createHmac } from 'node:crypto'
import { Sha256 } from '@aws-crypto/sha256-js'
import { HttpRequest } from '@smithy/protocol-http'
import { SignatureV4 } from '@smithy/signature-v4'
import t, { type Test } from 'tap'
import {
  authKind,
  type SignedRequest,
  type SigV4Auth,
  type VerifyInit,
  verifySigV4,
} from '../src/auth/sigv4.ts'
import { S3_ERRORS, S3Error, type S3ErrorCode } from '../src/s3/errors.ts'

const REGION = 'eu-west-1'
const HOST = 'gateway.test:9000'
const AKID = 'AKIDTESSERA0001'
const SECRET = 'tessera/secret+key=with~odd*chars'
const NOW = new Date('2024-03-01T12:00:00Z')
const EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'

type Query = Record<string, string | string[] | null>

interface SignOptions {
  method?: string
  /** The path as the S3 client puts it on the wire (already encoded). */
  path?: string
  query?: Query
  headers?: Record<string, string>
  body?: string
  date?: Date
  secret?: string
  accessKeyId?: string
  sessionToken?: string
  service?: string
  region?: string
}

function signer(o: SignOptions): SignatureV4 {
  return new SignatureV4({
    service: o.service ?? 's3',
    region: o.region ?? REGION,
    credentials: {
      accessKeyId: o.accessKeyId ?? AKID,
      secretAccessKey: o.secret ?? SECRET,
      ...(o.sessionToken !== undefined ? { sessionToken: o.sessionToken } : {}),
    },
    sha256: Sha256,
    uriEscapePath: false,
    applyChecksum: false,
  })
}

function httpRequest(o: SignOptions): HttpRequest {
  return new HttpRequest({
    method: o.method ?? 'GET',
    protocol: 'http:',
    hostname: 'gateway.test',
    port: 9000,
    path: o.path ?? '/bucket/key',
    query: o.query ?? {},
    headers: { host: HOST, ...o.headers },
    ...(o.body !== undefined ? { body: o.body } : {}),
  })
}

/** The escaping of the SDK's query builder and key serializer (RFC 3986 unreserved kept). */
function uriEscape(s: string): string {
  return encodeURIComponent(s).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  )
}

/** A key as the S3 client puts it in the path: each segment escaped, slashes kept. */
function keyPath(bucket: string, key: string): string {
  return `/${bucket}/${key.split('/').map(uriEscape).join('/')}`
}

/** The query string the SDK's HTTP handler sends. */
function queryString(query: Query): string {
  const parts: string[] = []
  for (const [name, value] of Object.entries(query)) {
    if (value === null) parts.push(uriEscape(name))
    else if (Array.isArray(value))
      for (const v of value) parts.push(`${uriEscape(name)}=${uriEscape(v)}`)
    else parts.push(`${uriEscape(name)}=${uriEscape(value)}`)
  }
  return parts.join('&')
}

/** The parts of a signed SDK request that go on the wire. */
interface WireRequest {
  method: string
  path: string
  query?: Record<string, string | string[] | null>
  headers: Record<string, string>
}

function received(req: WireRequest): SignedRequest {
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(req.headers)) headers[name.toLowerCase()] = value
  return { method: req.method, path: req.path, query: queryString(req.query ?? {}), headers }
}

async function signHeader(o: SignOptions = {}): Promise<SignedRequest> {
  const headers = { 'x-amz-content-sha256': EMPTY, ...o.headers }
  const signed = await signer(o).sign(httpRequest({ ...o, headers }), {
    signingDate: o.date ?? NOW,
  })
  return received(signed)
}

async function presign(o: SignOptions = {}, expiresIn = 3600): Promise<SignedRequest> {
  // What @aws-sdk/s3-request-presigner does: the payload is declared unsigned, and the header
  // is hoisted into the query string with the other x-amz-* headers.
  const headers = { 'X-Amz-Content-Sha256': 'UNSIGNED-PAYLOAD', ...o.headers }
  const signed = await signer(o).presign(httpRequest({ ...o, headers }), {
    signingDate: o.date ?? NOW,
    expiresIn,
  })
  return received(signed)
}

const secrets: Record<string, string> = { [AKID]: SECRET }
function init(extra: Partial<VerifyInit> = {}): VerifyInit {
  return {
    lookupSecret: async (id) => secrets[id],
    now: NOW,
    region: REGION,
    ...extra,
  }
}

async function failure(p: Promise<unknown>): Promise<S3Error> {
  try {
    await p
  } catch (err) {
    if (err instanceof S3Error) return err
    throw err
  }
  throw new Error('expected the verification to fail')
}

/** Asserts an S3Error with a code, its S3 status and a useful message. */
async function rejects(
  t: Test,
  p: Promise<unknown>,
  code: S3ErrorCode,
  message?: string | RegExp,
): Promise<S3Error> {
  const err = await failure(p)
  t.equal(err.code, code, `code ${code}`)
  t.equal(err.status, S3_ERRORS[code].status, `status ${S3_ERRORS[code].status}`)
  t.ok(err.message.length > 0, 'has a message')
  if (message !== undefined) t.match(err.message, message)
  return err
}

function withQuery(req: SignedRequest, edit: (p: URLSearchParams) => void): SignedRequest {
  // URLSearchParams re-encodes, which is fine for these parameters (no '+', no '~').
  const params = new URLSearchParams(req.query)
  edit(params)
  return { ...req, query: params.toString() }
}

function withHeaders(req: SignedRequest, headers: Record<string, string | undefined>) {
  const next = { ...req.headers }
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) delete next[name]
    else next[name] = value
  }
  return { ...req, headers: next }
}

function authorization(credential: string, signedHeaders: string, signature: string): string {
  return `AWS4-HMAC-SHA256 Credential=${credential}, SignedHeaders=${signedHeaders}, Signature=${signature}`
}

// --- AWS's published examples --------------------------------------------------------------

const DOC_AKID = 'AKIAIOSFODNN7EXAMPLE'
const DOC_SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'
const DOC_NOW = new Date('2013-05-24T00:00:00Z')
const docInit: VerifyInit = {
  lookupSecret: async (id) => (id === DOC_AKID ? DOC_SECRET : undefined),
  now: DOC_NOW,
  region: 'us-east-1',
}
const DOC_CREDENTIAL = `${DOC_AKID}/20130524/us-east-1/s3/aws4_request`

t.test('AWS example: GET Object with Range (sig-v4-header-based-auth)', async (t) => {
  const signature = 'f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41'
  const req: SignedRequest = {
    method: 'GET',
    path: '/test.txt',
    query: '',
    headers: {
      host: 'examplebucket.s3.amazonaws.com',
      range: 'bytes=0-9',
      'x-amz-content-sha256': EMPTY,
      'x-amz-date': '20130524T000000Z',
      authorization: `AWS4-HMAC-SHA256 Credential=${DOC_CREDENTIAL},SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=${signature}`,
    },
  }
  const auth = await verifySigV4(req, docInit)
  t.equal(auth.signature, signature)
  t.equal(auth.accessKeyId, DOC_AKID)
  t.equal(auth.scope, '20130524/us-east-1/s3/aws4_request')
  t.equal(auth.region, 'us-east-1')
  t.equal(auth.service, 's3')
  t.equal(auth.date.toISOString(), '2013-05-24T00:00:00.000Z')
  t.same(auth.signedHeaders, ['host', 'range', 'x-amz-content-sha256', 'x-amz-date'])
  t.equal(auth.presigned, false)
  t.equal(auth.payload, 'signed')
  t.equal(auth.payloadSha256, EMPTY)
  t.equal(auth.signingKey.length, 32)
  t.equal(auth.sessionToken, undefined)

  const err = await rejects(
    t,
    verifySigV4(withHeaders(req, { range: 'bytes=0-10' }), docInit),
    'SignatureDoesNotMatch',
  )
  t.equal(
    err.extra.CanonicalRequest,
    [
      'GET',
      '/test.txt',
      '',
      'host:examplebucket.s3.amazonaws.com',
      'range:bytes=0-10',
      `x-amz-content-sha256:${EMPTY}`,
      'x-amz-date:20130524T000000Z',
      '',
      'host;range;x-amz-content-sha256;x-amz-date',
      EMPTY,
    ].join('\n'),
  )
})

t.test('AWS example: PUT Object test$file.text with Date header', async (t) => {
  const signature = '98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd'
  const bodyHash = createHash('sha256').update('Welcome to Amazon S3.').digest('hex')
  t.equal(bodyHash, '44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072')
  const headers = {
    date: 'Fri, 24 May 2013 00:00:00 GMT',
    host: 'examplebucket.s3.amazonaws.com',
    'x-amz-content-sha256': bodyHash,
    'x-amz-date': '20130524T000000Z',
    'x-amz-storage-class': 'REDUCED_REDUNDANCY',
    authorization: `AWS4-HMAC-SHA256 Credential=${DOC_CREDENTIAL},SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,Signature=${signature}`,
  }
  // The canonical URI is /test%24file.text whether the client escaped the '$' or not.
  for (const path of ['/test%24file.text', '/test$file.text']) {
    const auth = await verifySigV4({ method: 'PUT', path, query: '', headers }, docInit)
    t.equal(auth.signature, signature, path)
    t.equal(auth.payloadSha256, bodyHash)
  }
})

t.test('AWS example: GET Bucket lifecycle (parameter without a value)', async (t) => {
  const signature = 'fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543'
  const req: SignedRequest = {
    method: 'GET',
    path: '/',
    query: 'lifecycle',
    headers: {
      host: 'examplebucket.s3.amazonaws.com',
      'x-amz-content-sha256': EMPTY,
      'x-amz-date': '20130524T000000Z',
      authorization: `AWS4-HMAC-SHA256 Credential=${DOC_CREDENTIAL},SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=${signature}`,
    },
  }
  t.equal((await verifySigV4(req, docInit)).signature, signature)
  t.equal((await verifySigV4({ ...req, query: 'lifecycle=' }, docInit)).signature, signature)
})

t.test('AWS example: GET Bucket (list objects, unsorted query)', async (t) => {
  const signature = '34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7'
  const req: SignedRequest = {
    method: 'GET',
    path: '/',
    query: 'max-keys=2&prefix=J',
    headers: {
      host: 'examplebucket.s3.amazonaws.com',
      'x-amz-content-sha256': EMPTY,
      'x-amz-date': '20130524T000000Z',
      authorization: `AWS4-HMAC-SHA256 Credential=${DOC_CREDENTIAL},SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=${signature}`,
    },
  }
  t.equal((await verifySigV4(req, docInit)).signature, signature)
  t.equal(
    (await verifySigV4({ ...req, query: 'prefix=J&max-keys=2' }, docInit)).signature,
    signature,
  )
})

t.test('AWS example: presigned GET Object (sigv4-query-string-auth)', async (t) => {
  const signature = 'aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404'
  const req: SignedRequest = {
    method: 'GET',
    path: '/test.txt',
    query: `X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=${signature}`,
    headers: { host: 'examplebucket.s3.amazonaws.com' },
  }
  t.equal(authKind(req), 'query')
  const auth = await verifySigV4(req, { ...docInit, now: new Date('2013-05-24T12:00:00Z') })
  t.equal(auth.signature, signature)
  t.equal(auth.presigned, true)
  t.equal(auth.payload, 'unsigned')
  t.equal(auth.payloadSha256, undefined)
  const err = await rejects(
    t,
    verifySigV4(req, { ...docInit, now: new Date('2013-05-25T00:00:01Z') }),
    'AccessDenied',
    'Request has expired',
  )
  t.same(err.extra, {
    'X-Amz-Expires': '86400',
    Expires: '2013-05-25T00:00:00Z',
    ServerTime: '2013-05-25T00:00:01Z',
  })
})

t.test('AWS example: seed signature of the chunked upload (sigv4-streaming)', async (t) => {
  const seed = '4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9'
  const req: SignedRequest = {
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
      authorization: `AWS4-HMAC-SHA256 Credential=${DOC_CREDENTIAL},SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature=${seed}`,
    },
  }
  const auth = await verifySigV4(req, docInit)
  t.equal(auth.signature, seed)
  t.equal(auth.payload, 'streaming-signed')
  t.equal(auth.payloadSha256, undefined)
})

// --- Cross-checks against @smithy/signature-v4 -----------------------------------------------

const AWKWARD_KEYS = [
  'plain.txt',
  'a b/c d.txt',
  'ünïcødé/日本語/файл.bin',
  'tilde~name',
  'plus+sign',
  'eq=ual',
  'star*',
  "quote'(paren)!",
  'dollar$&amp,;colon:@at',
  'percent%literal',
  'double//slash/../dots/./x',
  'trailing/',
  'emoji 😀',
  '#hash?question',
]

t.test('header auth: keys with awkward characters verify as the SDK signs them', async (t) => {
  for (const key of AWKWARD_KEYS) {
    const req = await signHeader({ method: 'PUT', path: keyPath('bucket', key) })
    const auth = await verifySigV4(req, init())
    t.equal(auth.accessKeyId, AKID, key)
  }
})

t.test('presign: keys with awkward characters verify as the SDK signs them', async (t) => {
  for (const key of AWKWARD_KEYS) {
    const req = await presign({ path: keyPath('bucket', key) })
    t.equal(authKind(req), 'query')
    const auth = await verifySigV4(req, init())
    t.equal(auth.presigned, true, key)
    t.equal(auth.payload, 'unsigned')
  }
})

const AWKWARD_QUERY: Query = {
  prefix: 'a b+c/ü~*',
  'list-type': '2',
  'empty-value': '',
  multi: ['b', 'a', 'c', 'a'],
  'weird name!': "v'(*)",
  'max-keys': '1000',
  'continuation-token': 'AbC/dEf+gHi=',
  'x-id': 'ListObjectsV2',
}

t.test('query parameters: empty values, repeated names, escapes', async (t) => {
  const header = await signHeader({ path: '/bucket', query: AWKWARD_QUERY })
  t.ok(await verifySigV4(header, init()))
  const query = await presign({ path: '/bucket', query: AWKWARD_QUERY })
  t.ok(await verifySigV4(query, init()))

  // The order of the parameters on the wire does not matter.
  const reversed = { ...header, query: header.query.split('&').reverse().join('&') }
  t.ok(await verifySigV4(reversed, init()))
})

t.test('query forms other clients send', async (t) => {
  // A parameter without '=' is signed as having an empty value.
  const uploads = await signHeader({ method: 'POST', path: '/bucket/key', query: { uploads: '' } })
  t.equal(uploads.query, 'uploads=')
  t.ok(await verifySigV4({ ...uploads, query: 'uploads' }, init()))

  // '+' for a space, lower-case escapes, and escaped unreserved characters.
  const prefix = await signHeader({ path: '/bucket', query: { prefix: 'a b~c/d' } })
  t.equal(prefix.query, 'prefix=a%20b~c%2Fd')
  for (const raw of ['prefix=a+b~c/d', 'prefix=a%20b%7Ec%2fd', 'pre%66ix=a b~c/d']) {
    t.ok(await verifySigV4({ ...prefix, query: raw }, init()), raw)
  }
  // '%2B' is a plus sign, not a space.
  t.equal(
    (await failure(verifySigV4({ ...prefix, query: 'prefix=a%2Bb~c/d' }, init()))).code,
    'SignatureDoesNotMatch',
  )
})

t.test('path forms other clients send', async (t) => {
  // A client that leaves reserved characters raw: S3 escapes them in the canonical URI.
  const dollar = await signHeader({ path: '/bucket/a%24b%3Dc%40d%2Ae%28f%29' })
  t.ok(await verifySigV4({ ...dollar, path: '/bucket/a$b=c@d*e(f)' }, init()))
  // A client that escapes more than it must, or in lower case: the normalised form matches.
  const tilde = await signHeader({ path: '/bucket/a~b/%C3%BC' })
  t.ok(await verifySigV4({ ...tilde, path: '/bucket/a%7Eb/%c3%bc' }, init()))
  // The path is not normalised: dot segments and double slashes are part of the key.
  const dots = await signHeader({ path: '/bucket/a//b/../c' })
  t.ok(await verifySigV4(dots, init()))
  t.equal(
    (await failure(verifySigV4({ ...dots, path: '/bucket/a/c' }, init()))).code,
    'SignatureDoesNotMatch',
  )
  // A client that signs reserved characters raw is refused, as AWS refuses it.
  const raw = await signHeader({ path: '/bucket/a$b' })
  const err = await rejects(t, verifySigV4(raw, init()), 'SignatureDoesNotMatch')
  t.match(err.extra.CanonicalRequest, /^GET\n\/bucket\/a%24b\n/)
})

t.test('header auth: payload modes from x-amz-content-sha256', async (t) => {
  const upper = createHash('sha256').update('x').digest('hex').toUpperCase()
  const cases: Array<[string, SigV4Auth['payload'], string | undefined]> = [
    [EMPTY, 'signed', EMPTY],
    [upper, 'signed', upper.toLowerCase()],
    ['UNSIGNED-PAYLOAD', 'unsigned', undefined],
    ['STREAMING-AWS4-HMAC-SHA256-PAYLOAD', 'streaming-signed', undefined],
    ['STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER', 'streaming-signed-trailer', undefined],
    ['STREAMING-UNSIGNED-PAYLOAD-TRAILER', 'streaming-unsigned-trailer', undefined],
  ]
  for (const [value, payload, sha] of cases) {
    const req = await signHeader({ method: 'PUT', headers: { 'x-amz-content-sha256': value } })
    const auth = await verifySigV4(req, init())
    t.equal(auth.payload, payload, value)
    t.equal(auth.payloadSha256, sha)
  }
  const bad = await signHeader({ headers: { 'x-amz-content-sha256': 'STREAMING-FOO' } })
  const err = await rejects(t, verifySigV4(bad, init()), 'InvalidArgument', /x-amz-content-sha256/)
  t.equal(err.extra.ArgumentName, 'x-amz-content-sha256')
  t.equal(err.extra.ArgumentValue, 'STREAMING-FOO')
})

t.test('presign: payload hash in the query string', async (t) => {
  const hash = createHash('sha256').update('body').digest('hex')
  const req = await presign({ method: 'PUT', headers: { 'X-Amz-Content-Sha256': hash } })
  const auth = await verifySigV4(req, init())
  t.equal(auth.payload, 'signed')
  t.equal(auth.payloadSha256, hash)
  const streaming = await presign({
    method: 'PUT',
    headers: { 'X-Amz-Content-Sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD' },
  })
  await rejects(t, verifySigV4(streaming, init()), 'InvalidRequest')
})

t.test('session tokens are reported from the header and the query string', async (t) => {
  const header = await signHeader({ sessionToken: 'FwoGZXIvYXdzE+token/=' })
  t.equal(header.headers['x-amz-security-token'], 'FwoGZXIvYXdzE+token/=')
  t.equal((await verifySigV4(header, init())).sessionToken, 'FwoGZXIvYXdzE+token/=')
  const query = await presign({ sessionToken: 'FwoGZXIvYXdzE+token/=' })
  t.equal((await verifySigV4(query, init())).sessionToken, 'FwoGZXIvYXdzE+token/=')
})

t.test('secrets with spaces, unicode and symbols', async (t) => {
  for (const secret of ['with space', 'ünï/cødé+=', '~*!', 'x'.repeat(128)]) {
    const id = `AKID${createHash('md5').update(secret).digest('hex').slice(0, 8)}`
    const lookup = { lookupSecret: async (k: string) => (k === id ? secret : undefined) }
    const header = await signHeader({ secret, accessKeyId: id })
    t.equal((await verifySigV4(header, init(lookup))).accessKeyId, id)
    const query = await presign({ secret, accessKeyId: id })
    t.equal((await verifySigV4(query, init(lookup))).accessKeyId, id)
  }
})

t.test('other services are reported; their body hash comes from the caller', async (t) => {
  const body = 'Action=GetCallerIdentity&Version=2011-06-15'
  const bodySha256 = createHash('sha256').update(body).digest('hex')
  const signed = await signer({ service: 'sts' }).sign(
    httpRequest({
      method: 'POST',
      path: '/',
      body,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    }),
    { signingDate: NOW },
  )
  const req = received(signed)
  t.equal(req.headers['x-amz-content-sha256'], undefined)
  const auth = await verifySigV4(req, init({ bodySha256 }))
  t.equal(auth.service, 'sts')
  t.equal(auth.payload, 'signed')
  t.equal(auth.payloadSha256, bodySha256)
  await rejects(t, verifySigV4(req, init()), 'InvalidRequest', /x-amz-content-sha256/)
  const wrong = createHash('sha256').update('other').digest('hex')
  await rejects(t, verifySigV4(req, init({ bodySha256: wrong })), 'SignatureDoesNotMatch')
})

t.test('random requests signed by the SDK all verify', async (t) => {
  // A deterministic generator, so a failure can be replayed.
  let seed = 0x5eed
  const next = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31
    return seed % n
  }
  const alphabet = 'aZ09-_.~ !$&\'()*+,;=:@%/?#[]"<>\\^`{|}ü日😀\t'
  const text = (max: number) => {
    let s = ''
    const chars = [...alphabet]
    for (let i = next(max) + 1; i > 0; i--) s += chars[next(chars.length)]
    return s
  }
  for (let i = 0; i < 150; i++) {
    const query: Query = {}
    for (let j = next(4); j > 0; j--) {
      const name = text(6).replace(/\//g, '')
      query[name] = next(3) === 0 ? [text(5), text(5)] : text(8)
    }
    const o: SignOptions = {
      method: ['GET', 'PUT', 'POST', 'DELETE', 'HEAD'][next(5)] ?? 'GET',
      path: keyPath('bucket', text(20)),
      query,
      headers: { 'x-amz-meta-note': ` ${text(10).replace(/\s/g, '')}  x ` },
    }
    const req = next(2) === 0 ? await signHeader(o) : await presign(o)
    const outcome = await verifySigV4(req, init()).then(
      () => 'verified',
      (err: S3Error) => `${err.code}: ${JSON.stringify(req)}`,
    )
    t.equal(outcome, 'verified', `request ${i}`)
  }
})

// --- Tampering ------------------------------------------------------------------------------

t.test('tampering with any signed part fails with SignatureDoesNotMatch', async (t) => {
  const o: SignOptions = {
    method: 'PUT',
    path: keyPath('bucket', 'dir/key name.txt'),
    query: { partNumber: '3', uploadId: 'abc' },
    headers: { 'x-amz-meta-color': 'blue', 'content-type': 'text/plain' },
  }
  const header = await signHeader(o)
  const query = await presign(o)
  const tampered: Array<[string, SignedRequest]> = [
    ['method', { ...header, method: 'POST' }],
    ['path', { ...header, path: '/bucket/dir/key%20name.txt2' }],
    ['query value', { ...header, query: header.query.replace('partNumber=3', 'partNumber=4') }],
    ['query added', { ...header, query: `${header.query}&versionId=1` }],
    ['signed header', withHeaders(header, { 'x-amz-meta-color': 'red' })],
    ['content-type', withHeaders(header, { 'content-type': 'text/html' })],
    ['date', withHeaders(header, { 'x-amz-date': '20240301T120001Z' })],
    ['presigned method', { ...query, method: 'DELETE' }],
    ['presigned path', { ...query, path: '/bucket/other' }],
    ['presigned param', withQuery(query, (p) => p.set('uploadId', 'abd'))],
    ['presigned expiry', withQuery(query, (p) => p.set('X-Amz-Expires', '3601'))],
    ['presigned date', withQuery(query, (p) => p.set('X-Amz-Date', '20240301T120001Z'))],
  ]
  for (const [what, req] of tampered) {
    const err = await rejects(t, verifySigV4(req, init()), 'SignatureDoesNotMatch')
    t.equal(err.extra.AWSAccessKeyId, AKID, what)
    t.ok(err.extra.StringToSign?.startsWith('AWS4-HMAC-SHA256\n'), `${what}: StringToSign`)
    t.ok(err.extra.CanonicalRequest?.startsWith(`${req.method}\n`), `${what}: CanonicalRequest`)
    t.ok(err.extra.SignatureProvided, `${what}: SignatureProvided`)
    t.notOk(JSON.stringify(err).includes(SECRET), `${what}: the secret is not in the error`)
    t.notOk(JSON.stringify(err.extra).includes(SECRET))
  }
  // The same requests verify with the right secret, and fail with another one.
  t.ok(await verifySigV4(header, init()))
  const other = init({ lookupSecret: async () => `${SECRET}x` })
  await rejects(t, verifySigV4(header, other), 'SignatureDoesNotMatch')
  await rejects(t, verifySigV4(query, other), 'SignatureDoesNotMatch')
})

t.test('the returned signing key is a copy of the cached one', async (t) => {
  const req = await signHeader()
  const first = await verifySigV4(req, init())
  const copy = Buffer.from(first.signingKey)
  first.signingKey.fill(0)
  const second = await verifySigV4(req, init())
  t.same(second.signingKey, copy)
})

t.test('many keys and days still verify (bounded signing-key cache)', async (t) => {
  for (let i = 0; i < 300; i++) {
    const id = `AKIDMANY${i}`
    const date = new Date(NOW.getTime() - (i % 3) * 86_400_000)
    const req = await signHeader({ accessKeyId: id, secret: `secret-${i}`, date })
    const auth = await verifySigV4(req, {
      lookupSecret: async (k) => (k === id ? `secret-${i}` : undefined),
      now: date,
    })
    t.equal(auth.accessKeyId, id)
  }
})

// --- Time -----------------------------------------------------------------------------------

t.test('clock skew', async (t) => {
  const skewed = await signHeader({ date: new Date(NOW.getTime() - 16 * 60_000) })
  const err = await rejects(t, verifySigV4(skewed, init()), 'RequestTimeTooSkewed')
  t.same(err.extra, {
    RequestTime: '20240301T114400Z',
    ServerTime: '2024-03-01T12:00:00Z',
    MaxAllowedSkewMilliseconds: '900000',
  })
  const ahead = await signHeader({ date: new Date(NOW.getTime() + 16 * 60_000) })
  await rejects(t, verifySigV4(ahead, init()), 'RequestTimeTooSkewed')
  const near = await signHeader({ date: new Date(NOW.getTime() - 14 * 60_000) })
  t.ok(await verifySigV4(near, init()))
  await rejects(t, verifySigV4(near, init({ maxSkewMs: 60_000 })), 'RequestTimeTooSkewed')
})

t.test('presigned validity window', async (t) => {
  const req = await presign({}, 60)
  t.ok(await verifySigV4(req, init({ now: new Date(NOW.getTime() + 60_000) })))
  const err = await rejects(
    t,
    verifySigV4(req, init({ now: new Date(NOW.getTime() + 61_000) })),
    'AccessDenied',
    'Request has expired',
  )
  t.equal(err.extra['X-Amz-Expires'], '60')
  t.equal(err.extra.Expires, '2024-03-01T12:01:00Z')
  t.equal(err.extra.ServerTime, '2024-03-01T12:01:01Z')
  // Signed a little in the future (client clock ahead) is fine; far in the future is not.
  t.ok(await verifySigV4(req, init({ now: new Date(NOW.getTime() - 10 * 60_000) })))
  await rejects(
    t,
    verifySigV4(req, init({ now: new Date(NOW.getTime() - 16 * 60_000) })),
    'AccessDenied',
    'Request is not valid yet',
  )
  // A week is the longest validity.
  const week = await presign({}, 604_800)
  t.ok(await verifySigV4(week, init({ now: new Date(NOW.getTime() + 604_800_000) })))
})

// --- Keys -----------------------------------------------------------------------------------

t.test('unknown access key', async (t) => {
  const header = await signHeader({ accessKeyId: 'AKIDUNKNOWN' })
  const err = await rejects(t, verifySigV4(header, init()), 'InvalidAccessKeyId')
  t.equal(err.extra.AWSAccessKeyId, 'AKIDUNKNOWN')
  const query = await presign({ accessKeyId: 'AKIDUNKNOWN' })
  await rejects(t, verifySigV4(query, init()), 'InvalidAccessKeyId')
})

t.test('region', async (t) => {
  const req = await signHeader({ region: 'us-east-1' })
  const err = await rejects(
    t,
    verifySigV4(req, init()),
    'AuthorizationHeaderMalformed',
    "the region 'us-east-1' is wrong; expecting 'eu-west-1'",
  )
  t.equal(err.extra.Region, REGION)
  t.equal((await verifySigV4(req, init({ region: 'us-east-1' }))).region, 'us-east-1')
  const { region: _, ...anyRegion } = init()
  t.equal((await verifySigV4(req, anyRegion)).region, 'us-east-1')

  const query = await presign({ region: 'us-east-1' })
  const qerr = await rejects(
    t,
    verifySigV4(query, init()),
    'AuthorizationQueryParametersError',
    "Error parsing the X-Amz-Credential parameter; the region 'us-east-1' is wrong; expecting 'eu-west-1'",
  )
  t.equal(qerr.extra.Region, REGION)
})

// --- Malformed requests ---------------------------------------------------------------------

t.test('authKind', async (t) => {
  const base: SignedRequest = { method: 'GET', path: '/b/k', query: '', headers: { host: HOST } }
  t.equal(authKind(base), 'none')
  t.equal(authKind({ ...base, query: 'prefix=a&list-type=2' }), 'none')
  t.equal(authKind({ ...base, headers: { authorization: 'AWS4-HMAC-SHA256 x' } }), 'header')
  t.equal(authKind({ ...base, query: 'X-Amz-Algorithm=AWS4-HMAC-SHA256' }), 'query')
  t.equal(authKind({ ...base, query: 'X-Amz-Credential=a' }), 'query')
  const v2Header = { ...base, headers: { authorization: 'AWS AKIAIOSFODNN7EXAMPLE:frJIUN8D=' } }
  const v2Query = { ...base, query: 'AWSAccessKeyId=AKIA&Expires=1141889120&Signature=vjbyPx' }
  for (const req of [v2Header, v2Query]) {
    const err = await failure(Promise.resolve().then(() => authKind(req)))
    t.equal(err.code, 'InvalidRequest')
    t.match(err.message, /Please use AWS4-HMAC-SHA256/)
    await rejects(t, verifySigV4(req, init()), 'InvalidRequest', /AWS4-HMAC-SHA256/)
  }
  const both = {
    ...base,
    query: 'X-Amz-Algorithm=AWS4-HMAC-SHA256',
    headers: { authorization: 'AWS4-HMAC-SHA256 x' },
  }
  await rejects(t, verifySigV4(both, init()), 'InvalidArgument', /Only one auth mechanism/)
  await rejects(t, verifySigV4(base, init()), 'AccessDenied')
})

t.test('malformed Authorization headers', async (t) => {
  const req = await signHeader()
  const good = req.headers.authorization ?? ''
  const signature = /Signature=([0-9a-f]{64})/.exec(good)?.[1] ?? ''
  const credential = `${AKID}/20240301/${REGION}/s3/aws4_request`
  const signed = 'host;x-amz-content-sha256;x-amz-date'
  const cases: Array<[string, S3ErrorCode, RegExp]> = [
    ['AWS4-HMAC-SHA256', 'InvalidArgument', /one and only one ' ' \(space\)/],
    [`AWS4-HMAC-SHA512 Credential=${credential}`, 'InvalidArgument', /Unsupported Authorization/],
    [`AWS4-ECDSA-P256-SHA256 Credential=${credential}`, 'InvalidRequest', /not supported/],
    [
      `AWS4-HMAC-SHA256 Credential=${credential}, SignedHeaders=${signed}`,
      'AuthorizationHeaderMalformed',
      /requires three components: Credential, SignedHeaders, and Signature/,
    ],
    [
      `${good}, Extra=1`,
      'AuthorizationHeaderMalformed',
      /the authorization component "Extra=1" is malformed/,
    ],
    [
      `${good}, Signature=${signature}`,
      'AuthorizationHeaderMalformed',
      /component "Signature=.*" is malformed/,
    ],
    [
      `AWS4-HMAC-SHA256 Credential ${credential}, SignedHeaders=${signed}, Signature=${signature}`,
      'AuthorizationHeaderMalformed',
      /is malformed/,
    ],
    [
      authorization(`${AKID}/20240301/${REGION}/s3`, signed, signature),
      'AuthorizationHeaderMalformed',
      /the Credential is mal-formed; expecting "<YOUR-AKID>\/YYYYMMDD\/REGION\/SERVICE\/aws4_request"/,
    ],
    [
      authorization(`/20240301/${REGION}/s3/aws4_request`, signed, signature),
      'AuthorizationHeaderMalformed',
      /non-empty Access Key/,
    ],
    [
      authorization(`${AKID}/2024-03-01/${REGION}/s3/aws4_request`, signed, signature),
      'AuthorizationHeaderMalformed',
      /incorrect date format "2024-03-01"/,
    ],
    [
      authorization(`${AKID}/20240231/${REGION}/s3/aws4_request`, signed, signature),
      'AuthorizationHeaderMalformed',
      /incorrect date format "20240231"/,
    ],
    [
      authorization(`${AKID}/20240301//s3/aws4_request`, signed, signature),
      'AuthorizationHeaderMalformed',
      /non-empty region/,
    ],
    [
      authorization(`${AKID}/20240301/${REGION}//aws4_request`, signed, signature),
      'AuthorizationHeaderMalformed',
      /non-empty service/,
    ],
    [
      authorization(`${AKID}/20240301/${REGION}/s3/aws4_reques`, signed, signature),
      'AuthorizationHeaderMalformed',
      /incorrect terminal "aws4_reques"/,
    ],
    [
      authorization(`${AKID}/20240302/${REGION}/s3/aws4_request`, signed, signature),
      'AuthorizationHeaderMalformed',
      /Invalid credential date. Date is not the same as X-Amz-Date/,
    ],
    [
      authorization(credential, 'host;X-Amz-Date;x-amz-content-sha256', signature),
      'AuthorizationHeaderMalformed',
      /SignedHeaders/,
    ],
    [
      authorization(credential, 'host;;x-amz-content-sha256;x-amz-date', signature),
      'AuthorizationHeaderMalformed',
      /SignedHeaders/,
    ],
    [
      authorization(credential, 'x-amz-content-sha256;x-amz-date', signature),
      'AccessDenied',
      /headers present in the request which were not signed/,
    ],
    [authorization(credential, signed, 'nothex'), 'SignatureDoesNotMatch', /signature/],
    [authorization(credential, signed, '0'.repeat(64)), 'SignatureDoesNotMatch', /signature/],
  ]
  for (const [value, code, message] of cases) {
    await rejects(t, verifySigV4(withHeaders(req, { authorization: value }), init()), code, message)
  }
  // Upper-case hex and no spaces after the commas are accepted.
  const upper = good.replace(signature, signature.toUpperCase()).replace(/, /g, ',')
  t.ok(await verifySigV4(withHeaders(req, { authorization: upper }), init()))
  // Signed headers in another order are sorted, as every signer sorts them.
  const shuffled = good.replace(signed, 'x-amz-date;host;x-amz-content-sha256')
  t.ok(await verifySigV4(withHeaders(req, { authorization: shuffled }), init()))
})

t.test('required headers for header auth', async (t) => {
  const req = await signHeader({ headers: { 'x-amz-meta-a': '1' } })
  await rejects(
    t,
    verifySigV4(withHeaders(req, { 'x-amz-date': undefined }), init()),
    'AccessDenied',
    'AWS authentication requires a valid Date or x-amz-date header',
  )
  for (const date of ['2024-03-01T12:00:00Z', '20240301T120000', '20241301T120000Z']) {
    await rejects(
      t,
      verifySigV4(withHeaders(req, { 'x-amz-date': date }), init()),
      'AccessDenied',
      /valid Date or x-amz-date/,
    )
  }
  await rejects(
    t,
    verifySigV4(withHeaders(req, { 'x-amz-content-sha256': undefined }), init()),
    'InvalidRequest',
    'Missing required header for this request: x-amz-content-sha256',
  )
  const extra = await rejects(
    t,
    verifySigV4(withHeaders(req, { 'x-amz-meta-b': '2', 'x-amz-acl': 'public-read' }), init()),
    'AccessDenied',
    'There were headers present in the request which were not signed',
  )
  t.equal(extra.extra.HeadersNotSigned, 'x-amz-acl, x-amz-meta-b')
  // Headers that are neither signed nor x-amz-* may be added on the way (proxies do).
  t.ok(
    await verifySigV4(withHeaders(req, { 'user-agent': 'curl', 'x-forwarded-for': '1' }), init()),
  )
})

t.test('the Date header stands in for x-amz-date', async (t) => {
  const base = await signHeader()
  const signed = 'date;host;x-amz-content-sha256'
  // Sign by hand, since the SDK always sets x-amz-date.
  const manual: SignedRequest = {
    ...withHeaders(base, { 'x-amz-date': undefined, date: 'Fri, 01 Mar 2024 12:00:00 GMT' }),
  }
  const err = await failure(
    verifySigV4(
      withHeaders(manual, {
        authorization: authorization(
          `${AKID}/20240301/${REGION}/s3/aws4_request`,
          signed,
          '0'.repeat(64),
        ),
      }),
      init(),
    ),
  )
  t.equal(err.code, 'SignatureDoesNotMatch')
  t.match(err.extra.StringToSign, /^AWS4-HMAC-SHA256\n20240301T120000Z\n/)
  const h = (k: string | Buffer, d: string) => createHmac('sha256', k).update(d).digest()
  const key = h(h(h(h(`AWS4${SECRET}`, '20240301'), REGION), 's3'), 'aws4_request')
  const signature = createHmac('sha256', key)
    .update(err.extra.StringToSign ?? '')
    .digest('hex')
  const ok = withHeaders(manual, {
    authorization: authorization(`${AKID}/20240301/${REGION}/s3/aws4_request`, signed, signature),
  })
  const auth = await verifySigV4(ok, init())
  t.equal(auth.date.toISOString(), NOW.toISOString())
})

t.test('malformed presigned URLs', async (t) => {
  const req = await presign()
  const cases: Array<[string, (p: URLSearchParams) => void, S3ErrorCode, RegExp]> = [
    [
      'missing SignedHeaders',
      (p) => p.delete('X-Amz-SignedHeaders'),
      'AuthorizationQueryParametersError',
      /requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters/,
    ],
    [
      'missing Expires',
      (p) => p.delete('X-Amz-Expires'),
      'AuthorizationQueryParametersError',
      /requires the X-Amz-Algorithm/,
    ],
    [
      'missing Algorithm',
      (p) => p.delete('X-Amz-Algorithm'),
      'AuthorizationQueryParametersError',
      /requires the X-Amz-Algorithm/,
    ],
    [
      'algorithm',
      (p) => p.set('X-Amz-Algorithm', 'AWS4-HMAC-SHA1'),
      'AuthorizationQueryParametersError',
      /X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"/,
    ],
    [
      'expires too long',
      (p) => p.set('X-Amz-Expires', '604801'),
      'AuthorizationQueryParametersError',
      /^X-Amz-Expires must be less than a week \(in seconds\) that is 604800$/,
    ],
    [
      'expires negative',
      (p) => p.set('X-Amz-Expires', '-1'),
      'AuthorizationQueryParametersError',
      /X-Amz-Expires must be non-negative/,
    ],
    [
      'expires not a number',
      (p) => p.set('X-Amz-Expires', '1h'),
      'AuthorizationQueryParametersError',
      /X-Amz-Expires should be a number/,
    ],
    ['expires zero', (p) => p.set('X-Amz-Expires', '0'), 'AccessDenied', /Request has expired/],
    [
      'date format',
      (p) => p.set('X-Amz-Date', '2024-03-01T12:00:00Z'),
      'AuthorizationQueryParametersError',
      /X-Amz-Date must be in the ISO8601 Long Format/,
    ],
    [
      'credential parts',
      (p) => p.set('X-Amz-Credential', `${AKID}/20240301/${REGION}/s3`),
      'AuthorizationQueryParametersError',
      /Error parsing the X-Amz-Credential parameter; the Credential is mal-formed/,
    ],
    [
      'credential terminal',
      (p) => p.set('X-Amz-Credential', `${AKID}/20240301/${REGION}/s3/aws4`),
      'AuthorizationQueryParametersError',
      /incorrect terminal "aws4"/,
    ],
    [
      'credential date',
      (p) => p.set('X-Amz-Credential', `${AKID}/20240302/${REGION}/s3/aws4_request`),
      'AuthorizationQueryParametersError',
      /Invalid credential date "20240302". This date is not the same as X-Amz-Date: "20240301"/,
    ],
    [
      'signed headers',
      (p) => p.set('X-Amz-SignedHeaders', 'Host'),
      'AuthorizationQueryParametersError',
      /SignedHeaders/,
    ],
    [
      'host not signed',
      (p) => p.set('X-Amz-SignedHeaders', 'x-amz-meta-a'),
      'AccessDenied',
      /headers present in the request which were not signed/,
    ],
    [
      'repeated signature',
      (p) => p.append('X-Amz-Signature', '0'.repeat(64)),
      'AuthorizationQueryParametersError',
      /only once/,
    ],
    [
      'bad content hash',
      (p) => p.set('X-Amz-Content-Sha256', 'abc'),
      'InvalidArgument',
      /x-amz-content-sha256 must be/,
    ],
  ]
  for (const [what, edit, code, message] of cases) {
    const err = await rejects(t, verifySigV4(withQuery(req, edit), init()), code, message)
    t.ok(err, what)
  }
  // x-amz-* headers sent along with a presigned URL must have been signed too.
  const err = await rejects(
    t,
    verifySigV4(withHeaders(req, { 'x-amz-acl': 'public-read' }), init()),
    'AccessDenied',
  )
  t.equal(err.extra.HeadersNotSigned, 'x-amz-acl')
  // Headers signed into a presigned URL must be sent with the same value.
  const withType = await presign({ method: 'PUT', headers: { 'content-type': 'image/png' } })
  t.match(withType.query, /X-Amz-SignedHeaders=content-type%3Bhost/)
  t.ok(await verifySigV4(withType, init()))
  await rejects(
    t,
    verifySigV4(withHeaders(withType, { 'content-type': 'text/html' }), init()),
    'SignatureDoesNotMatch',
  )
})

t.test('header values are trimmed and blank runs collapsed', async (t) => {
  const req = await signHeader({ headers: { 'x-amz-meta-spaced': '  a   b \t c  ' } })
  t.ok(await verifySigV4(withHeaders(req, { 'x-amz-meta-spaced': 'a b c' }), init()))
  t.ok(await verifySigV4(withHeaders(req, { 'x-amz-meta-spaced': ' a\tb  c ' }), init()))
  await rejects(
    t,
    verifySigV4(withHeaders(req, { 'x-amz-meta-spaced': 'a bc' }), init()),
    'SignatureDoesNotMatch',
  )
})
