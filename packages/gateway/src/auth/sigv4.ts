/**
 * AWS Signature Version 4 verification, as Amazon S3 performs it: the `Authorization` header
 * form and the presigned (query string) form, with the error codes and messages S3 answers.
 *
 * Design notes
 *
 * - Canonical URI. S3 encodes the path once and never normalises it (`a//b/../c` is a key, not
 *   a path to resolve). The SDKs sign the path they send (the S3 client passes
 *   `uriEscapePath: false` to the signer), so the canonical URI is the path as received, except
 *   that bytes a client left raw but SigV4's URI-encode escapes (`$ ! ' ( ) * + , ; = : @`,
 *   spaces, non-ASCII) are percent-encoded, which is what S3 does with them: clients that signed
 *   such bytes raw get SignatureDoesNotMatch from AWS too (aws-sdk-js-v3#283, jets3t#17,
 *   amazonka#127). When that form does not match, the fully normalised form (every segment
 *   decoded and encoded again, as MinIO does) is tried as well, so a client that escapes more
 *   than it must (`%7E` for `~`) or signs lower-case escapes is still accepted. Both forms name
 *   the same key, so accepting either grants nothing extra.
 * - Canonical query. Each parameter is decoded from its raw form (`+` is a space, as in
 *   `URLSearchParams`, which the S3 handlers use, so the signature covers the values they act
 *   on) and encoded again per RFC 3986; parameters are sorted by encoded name, then value.
 * - Signing keys change once a day per (secret, date, region, service); a small LRU keeps them.
 *   Its keys hold an HMAC of the secret under a per-process random key, never the secret.
 * - Signatures are compared in constant time over their decoded bytes.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { S3Error } from '../s3/errors.ts'

/** A request as the HTTP layer received it, before any decoding. */
export interface SignedRequest {
  /** Request method, upper-case as sent ('GET', 'PUT', …). */
  method: string
  /** The raw request path exactly as received, still percent-encoded, e.g. '/bucket/a%20b'. */
  path: string
  /** The raw query string without '?', exactly as received ('' when none). */
  query: string
  /** Lower-case header names; repeated headers already joined with ','. */
  headers: Record<string, string>
}

/** How the request body is authenticated, from `x-amz-content-sha256` (or the presigned form). */
export type PayloadMode =
  | 'signed'
  | 'unsigned'
  | 'streaming-signed'
  | 'streaming-signed-trailer'
  | 'streaming-unsigned-trailer'

/** What a verified SigV4 request proved. */
export interface SigV4Auth {
  /** The access key id that signed the request (its secret was found and matched). */
  accessKeyId: string
  /** Region named in the credential scope. */
  region: string
  /** Service named in the credential scope ('s3', 'sts', 'iam', …); the caller checks it. */
  service: string
  /** The request time: `x-amz-date` (or `Date`) for header auth, `X-Amz-Date` for presigned. */
  date: Date
  /** Credential scope, 'YYYYMMDD/region/service/aws4_request'. */
  scope: string
  /** The verified request signature (hex); the seed signature of an aws-chunked body. */
  signature: string
  /** Signed header names, lower-case and sorted. */
  signedHeaders: string[]
  /** True for the query string (presigned URL) form. */
  presigned: boolean
  /** How the body is authenticated; the streaming modes need an `AwsChunkedDecoder`. */
  payload: PayloadMode
  /** Hex SHA-256 the body must have, when the client signed a literal payload hash. */
  payloadSha256?: string
  /** The derived signing key (32 bytes), needed to verify aws-chunked chunk signatures. */
  signingKey: Buffer
  /** `x-amz-security-token` (header) or `X-Amz-Security-Token` (query), when present. */
  sessionToken?: string
}

/** Options of {@link verifySigV4}. */
export interface VerifyInit {
  /** The secret access key of an access key id; undefined answers InvalidAccessKeyId. */
  lookupSecret(accessKeyId: string): Promise<string | undefined>
  /** The server's current time; default `new Date()`. */
  now?: Date
  /** Largest allowed difference between request time and server time, in ms; default 15 min. */
  maxSkewMs?: number
  /**
   * The region this endpoint serves. When set, a credential scope naming another region is
   * rejected (AuthorizationHeaderMalformed / AuthorizationQueryParametersError), as AWS does.
   */
  region?: string
  /**
   * Hex SHA-256 of the request body, for services whose clients do not send
   * `x-amz-content-sha256` (STS, IAM): the caller reads the small body first and passes its
   * hash. Ignored for 's3', where the header is required.
   */
  bodySha256?: string
}

/** Default clock skew S3 allows: 15 minutes. */
export const DEFAULT_MAX_SKEW_MS = 15 * 60 * 1000

/** Longest validity of a presigned URL, in seconds (one week), as in S3. */
export const MAX_PRESIGNED_EXPIRES_SECONDS = 604_800

/** Hex SHA-256 of zero bytes. */
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'

const ALGORITHM = 'AWS4-HMAC-SHA256'
const TERMINATOR = 'aws4_request'
const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD'

const STREAMING_PAYLOADS: Readonly<Record<string, PayloadMode>> = {
  'STREAMING-AWS4-HMAC-SHA256-PAYLOAD': 'streaming-signed',
  'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER': 'streaming-signed-trailer',
  'STREAMING-UNSIGNED-PAYLOAD-TRAILER': 'streaming-unsigned-trailer',
}

/** Signing keys kept; one per (key, day, region, service) in use, so a few hundred is plenty. */
const SIGNING_KEY_CACHE_ENTRIES = 256

const PRESIGN_PARAMS = [
  'X-Amz-Algorithm',
  'X-Amz-Credential',
  'X-Amz-Date',
  'X-Amz-Expires',
  'X-Amz-SignedHeaders',
  'X-Amz-Signature',
] as const

/**
 * Which SigV4 form a request uses: the `Authorization` header, the presigned query string, or
 * none (anonymous). Throws S3Error for a request S3 would refuse before looking further: a
 * Signature Version 2 request (InvalidRequest: only AWS4-HMAC-SHA256 is supported) or one that
 * carries both forms (InvalidArgument).
 */
export function authKind(req: SignedRequest): 'header' | 'query' | 'none' {
  const authorization = req.headers.authorization
  const names = queryNames(req.query)
  const presignedV4 =
    names.has('X-Amz-Algorithm') || names.has('X-Amz-Credential') || names.has('X-Amz-Signature')
  const presignedV2 = names.has('AWSAccessKeyId') || names.has('Signature')
  if (authorization !== undefined && authorization !== '') {
    if (presignedV4 || presignedV2) {
      throw new S3Error(
        'InvalidArgument',
        'Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified',
        { ArgumentName: 'Authorization', ArgumentValue: authorization },
      )
    }
    if (/^AWS [^:\s]+:/.test(authorization)) throw unsupportedMechanism()
    return 'header'
  }
  if (presignedV4) return 'query'
  if (presignedV2) throw unsupportedMechanism()
  return 'none'
}

/**
 * Verifies a SigV4-signed request (header or presigned form) the way Amazon S3 does and
 * returns what it proved. Throws S3Error with the code, status and message S3 gives for each
 * failure; SignatureDoesNotMatch carries `StringToSign` and `CanonicalRequest` as AWS's does.
 */
export async function verifySigV4(req: SignedRequest, init: VerifyInit): Promise<SigV4Auth> {
  const kind = authKind(req)
  if (kind === 'none') {
    throw new S3Error('AccessDenied', 'The request is not signed; anonymous access is denied.')
  }
  const now = init.now ?? new Date()
  const maxSkewMs = init.maxSkewMs ?? DEFAULT_MAX_SKEW_MS
  const params = parseQuery(req.query)
  const parsed =
    kind === 'header'
      ? parseHeaderAuth(req, init, now, maxSkewMs)
      : parsePresigned(req, params, init, now, maxSkewMs)

  checkSignedHeaders(req, parsed.signedHeaders)

  const secret = await init.lookupSecret(parsed.accessKeyId)
  if (secret === undefined) {
    throw new S3Error('InvalidAccessKeyId', undefined, { AWSAccessKeyId: parsed.accessKeyId })
  }
  const key = signingKey(
    secret,
    parsed.scopeDate,
    parsed.region,
    parsed.service,
    parsed.accessKeyId,
  )

  const query = canonicalQuery(params)
  const headers = canonicalHeaders(req.headers, parsed.signedHeaders)
  const primaryPath = canonicalPath(req.path)
  const attempt = (path: string) => {
    const canonicalRequest = [
      req.method,
      path,
      query,
      headers,
      parsed.signedHeaders.join(';'),
      parsed.payloadHash,
    ].join('\n')
    const stringToSign = [
      ALGORITHM,
      parsed.amzDate,
      parsed.scope,
      sha256Hex(canonicalRequest),
    ].join('\n')
    const signature = hmac(key, stringToSign).toString('hex')
    return { canonicalRequest, stringToSign, signature }
  }
  let result = attempt(primaryPath)
  if (!signaturesEqual(result.signature, parsed.signature)) {
    const normalised = normalisedPath(req.path)
    const second = normalised === primaryPath ? undefined : attempt(normalised)
    if (second === undefined || !signaturesEqual(second.signature, parsed.signature)) {
      throw new S3Error('SignatureDoesNotMatch', undefined, {
        AWSAccessKeyId: parsed.accessKeyId,
        StringToSign: result.stringToSign,
        SignatureProvided: parsed.signature,
        StringToSignBytes: hexBytes(result.stringToSign),
        CanonicalRequest: result.canonicalRequest,
        CanonicalRequestBytes: hexBytes(result.canonicalRequest),
      })
    }
    result = second
  }

  return {
    accessKeyId: parsed.accessKeyId,
    region: parsed.region,
    service: parsed.service,
    date: parsed.date,
    scope: parsed.scope,
    signature: result.signature,
    signedHeaders: parsed.signedHeaders,
    presigned: kind === 'query',
    payload: parsed.payload,
    ...(parsed.payloadSha256 !== undefined ? { payloadSha256: parsed.payloadSha256 } : {}),
    // A copy: the cached key must not be changed through the returned object.
    signingKey: Buffer.from(key),
    ...(parsed.sessionToken !== undefined ? { sessionToken: parsed.sessionToken } : {}),
  }
}

/** Formats a time as SigV4's ISO 8601 basic form, 'YYYYMMDDTHHMMSSZ'. */
export function amzDate(date: Date): string {
  const year = date.getUTCFullYear()
  // Per request (twice): fields by hand cost a tenth of toISOString and two regex replaces.
  // Years outside 1000…9999 (and invalid dates, which throw) take the general path.
  if (!(year >= 1000 && year <= 9999)) {
    return date
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d{3}/, '')
  }
  return `${year}${pad2(date.getUTCMonth() + 1)}${pad2(date.getUTCDate())}T${pad2(date.getUTCHours())}${pad2(date.getUTCMinutes())}${pad2(date.getUTCSeconds())}Z`
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : `${n}`
}

/** HMAC-SHA256 of a string or bytes under a key. */
export function hmac(key: Uint8Array | string, data: string | Uint8Array): Buffer {
  return createHmac('sha256', key).update(data).digest()
}

/** Compares a computed hex signature with a client-supplied one in constant time. */
export function signaturesEqual(computedHex: string, providedHex: string): boolean {
  if (!/^[0-9a-fA-F]{64}$/.test(providedHex)) return false
  return timingSafeEqual(Buffer.from(computedHex, 'hex'), Buffer.from(providedHex, 'hex'))
}

/** Everything parsed from the request before the secret is needed. */
interface ParsedAuth {
  accessKeyId: string
  scopeDate: string
  region: string
  service: string
  scope: string
  date: Date
  amzDate: string
  signedHeaders: string[]
  signature: string
  payload: PayloadMode
  payloadHash: string
  payloadSha256?: string
  sessionToken?: string
}

/** Messages of one auth form: the prefix S3 puts before credential errors and the error code. */
interface FormErrors {
  code: 'AuthorizationHeaderMalformed' | 'AuthorizationQueryParametersError'
  prefix: string
}

const HEADER_FORM: FormErrors = {
  code: 'AuthorizationHeaderMalformed',
  prefix: 'The authorization header is malformed; ',
}
const QUERY_FORM: FormErrors = {
  code: 'AuthorizationQueryParametersError',
  prefix: 'Error parsing the X-Amz-Credential parameter; ',
}

function parseHeaderAuth(
  req: SignedRequest,
  init: VerifyInit,
  now: Date,
  maxSkewMs: number,
): ParsedAuth {
  const authorization = req.headers.authorization ?? ''
  const space = authorization.indexOf(' ')
  if (space <= 0) {
    throw new S3Error(
      'InvalidArgument',
      "Authorization header is invalid -- one and only one ' ' (space) required.",
      { ArgumentName: 'Authorization', ArgumentValue: authorization },
    )
  }
  const algorithm = authorization.slice(0, space)
  if (algorithm === 'AWS' || algorithm === 'AWS4-ECDSA-P256-SHA256') throw unsupportedMechanism()
  if (algorithm !== ALGORITHM) {
    throw new S3Error('InvalidArgument', 'Unsupported Authorization Type', {
      ArgumentName: 'Authorization',
      ArgumentValue: authorization,
    })
  }
  const components = new Map<string, string>()
  for (const part of authorization.slice(space + 1).split(',')) {
    const item = part.trim()
    const eq = item.indexOf('=')
    const name = eq < 0 ? '' : item.slice(0, eq)
    if (
      (name !== 'Credential' && name !== 'SignedHeaders' && name !== 'Signature') ||
      components.has(name)
    ) {
      throw malformed(HEADER_FORM, `the authorization component "${item}" is malformed.`)
    }
    components.set(name, item.slice(eq + 1))
  }
  const credential = components.get('Credential')
  const signedHeadersValue = components.get('SignedHeaders')
  const signature = components.get('Signature')
  if (credential === undefined || signedHeadersValue === undefined || signature === undefined) {
    throw malformed(
      HEADER_FORM,
      'the authorization header requires three components: Credential, SignedHeaders, and Signature.',
    )
  }
  const cred = parseCredential(credential, HEADER_FORM, init.region)

  const amzDateHeader = req.headers['x-amz-date']
  const dateHeader = req.headers.date
  const rawDate = amzDateHeader ?? dateHeader
  const date =
    amzDateHeader !== undefined
      ? parseAmzDate(amzDateHeader)
      : dateHeader !== undefined
        ? parseHttpDate(dateHeader)
        : undefined
  if (date === undefined || rawDate === undefined) {
    throw new S3Error(
      'AccessDenied',
      'AWS authentication requires a valid Date or x-amz-date header',
    )
  }
  const longDate = amzDate(date)
  if (cred.scopeDate !== longDate.slice(0, 8)) {
    throw malformed(HEADER_FORM, 'Invalid credential date. Date is not the same as X-Amz-Date.')
  }
  if (Math.abs(date.getTime() - now.getTime()) > maxSkewMs) {
    throw new S3Error('RequestTimeTooSkewed', undefined, {
      RequestTime: rawDate,
      ServerTime: isoSeconds(now),
      MaxAllowedSkewMilliseconds: String(maxSkewMs),
    })
  }

  const signedHeaders = parseSignedHeaders(signedHeadersValue, HEADER_FORM)
  const contentSha = req.headers['x-amz-content-sha256']
  let payload: { mode: PayloadMode; hash: string; sha256?: string }
  if (contentSha !== undefined) {
    payload = parsePayloadHash(contentSha)
  } else if (cred.service !== 's3' && init.bodySha256 !== undefined) {
    payload = { mode: 'signed', hash: init.bodySha256, sha256: init.bodySha256.toLowerCase() }
  } else {
    throw new S3Error(
      'InvalidRequest',
      'Missing required header for this request: x-amz-content-sha256',
    )
  }
  const sessionToken = req.headers['x-amz-security-token']
  return {
    ...cred,
    date,
    amzDate: longDate,
    signedHeaders,
    signature,
    payload: payload.mode,
    payloadHash: payload.hash,
    ...(payload.sha256 !== undefined ? { payloadSha256: payload.sha256 } : {}),
    ...(sessionToken !== undefined ? { sessionToken } : {}),
  }
}

function parsePresigned(
  req: SignedRequest,
  params: QueryParam[],
  init: VerifyInit,
  now: Date,
  maxSkewMs: number,
): ParsedAuth {
  const values = new Map<string, string>()
  for (const p of params) {
    if ((PRESIGN_PARAMS as readonly string[]).includes(p.name)) {
      if (values.has(p.name)) {
        throw new S3Error(
          'AuthorizationQueryParametersError',
          `The ${p.name} parameter must be given only once.`,
        )
      }
      values.set(p.name, p.value)
    }
  }
  const algorithm = values.get('X-Amz-Algorithm')
  const credential = values.get('X-Amz-Credential')
  const rawDate = values.get('X-Amz-Date')
  const expiresValue = values.get('X-Amz-Expires')
  const signedHeadersValue = values.get('X-Amz-SignedHeaders')
  const signature = values.get('X-Amz-Signature')
  if (
    algorithm === undefined ||
    credential === undefined ||
    rawDate === undefined ||
    expiresValue === undefined ||
    signedHeadersValue === undefined ||
    signature === undefined
  ) {
    throw new S3Error(
      'AuthorizationQueryParametersError',
      'Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.',
    )
  }
  if (algorithm !== ALGORITHM) {
    throw new S3Error(
      'AuthorizationQueryParametersError',
      'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"',
    )
  }
  const cred = parseCredential(credential, QUERY_FORM, init.region)
  const date = parseAmzDate(rawDate)
  if (date === undefined) {
    throw new S3Error(
      'AuthorizationQueryParametersError',
      `X-Amz-Date must be in the ISO8601 Long Format "yyyyMMdd'T'HHmmss'Z'"`,
    )
  }
  if (cred.scopeDate !== rawDate.slice(0, 8)) {
    throw new S3Error(
      'AuthorizationQueryParametersError',
      `Invalid credential date "${cred.scopeDate}". This date is not the same as X-Amz-Date: "${rawDate.slice(0, 8)}".`,
    )
  }
  if (!/^-?\d+$/.test(expiresValue)) {
    throw new S3Error('AuthorizationQueryParametersError', 'X-Amz-Expires should be a number')
  }
  const expires = Number(expiresValue)
  if (expires < 0) {
    throw new S3Error('AuthorizationQueryParametersError', 'X-Amz-Expires must be non-negative')
  }
  if (expires > MAX_PRESIGNED_EXPIRES_SECONDS) {
    throw new S3Error(
      'AuthorizationQueryParametersError',
      'X-Amz-Expires must be less than a week (in seconds) that is 604800',
    )
  }
  // A URL signed a little in the future is fine (client clocks drift); beyond the allowed
  // skew it is refused until its time comes, as S3 does.
  if (date.getTime() - now.getTime() > maxSkewMs) {
    throw new S3Error('AccessDenied', 'Request is not valid yet')
  }
  const expiresAt = new Date(date.getTime() + expires * 1000)
  if (now.getTime() > expiresAt.getTime() || expires === 0) {
    throw new S3Error('AccessDenied', 'Request has expired', {
      'X-Amz-Expires': String(expires),
      Expires: isoSeconds(expiresAt),
      ServerTime: isoSeconds(now),
    })
  }

  const signedHeaders = parseSignedHeaders(signedHeadersValue, QUERY_FORM)
  // The S3 presigner hoists the header into the query string; some clients send it as a
  // header instead (MinIO accepts both). Without either, the payload is unsigned.
  const contentSha =
    params.find((p) => p.name.toLowerCase() === 'x-amz-content-sha256')?.value ??
    req.headers['x-amz-content-sha256']
  const payload =
    contentSha === undefined
      ? { mode: 'unsigned' as const, hash: UNSIGNED_PAYLOAD }
      : parsePayloadHash(contentSha)
  if (payload.mode !== 'signed' && payload.mode !== 'unsigned') {
    throw new S3Error(
      'InvalidRequest',
      'Presigned URLs cannot carry an aws-chunked body; sign the request with the Authorization header to stream it.',
    )
  }
  const sessionToken = params.find((p) => p.name === 'X-Amz-Security-Token')?.value
  return {
    ...cred,
    date,
    amzDate: rawDate,
    signedHeaders,
    signature,
    payload: payload.mode,
    payloadHash: payload.hash,
    ...(payload.sha256 !== undefined ? { payloadSha256: payload.sha256 } : {}),
    ...(sessionToken !== undefined ? { sessionToken } : {}),
  }
}

interface Credential {
  accessKeyId: string
  scopeDate: string
  region: string
  service: string
  scope: string
}

function parseCredential(value: string, form: FormErrors, expectedRegion?: string): Credential {
  const parts = value.split('/')
  const [accessKeyId, scopeDate, region, service, terminator] = parts
  if (
    parts.length !== 5 ||
    accessKeyId === undefined ||
    scopeDate === undefined ||
    region === undefined ||
    service === undefined ||
    terminator === undefined
  ) {
    throw malformed(
      form,
      'the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".',
    )
  }
  if (accessKeyId === '') {
    throw malformed(form, 'a non-empty Access Key (AKID) must be provided in the credential.')
  }
  if (!isCalendarDate(scopeDate)) {
    throw malformed(
      form,
      `incorrect date format "${scopeDate}". This date in the credential must be in the format "yyyyMMdd".`,
    )
  }
  if (region === '') {
    throw malformed(form, 'a non-empty region must be provided in the credential.')
  }
  if (service === '') {
    throw malformed(form, 'a non-empty service must be provided in the credential.')
  }
  if (terminator !== TERMINATOR) {
    throw malformed(form, `incorrect terminal "${terminator}". This endpoint uses "${TERMINATOR}".`)
  }
  if (expectedRegion !== undefined && region !== expectedRegion) {
    throw new S3Error(
      form.code,
      `${form.prefix}the region '${region}' is wrong; expecting '${expectedRegion}'`,
      { Region: expectedRegion },
    )
  }
  return {
    accessKeyId,
    scopeDate,
    region,
    service,
    scope: `${scopeDate}/${region}/${service}/${TERMINATOR}`,
  }
}

function parseSignedHeaders(value: string, form: FormErrors): string[] {
  const names = value.split(';')
  const seen = new Set<string>()
  for (const name of names) {
    if (!/^[a-z0-9!#$%&'*+.^_`|~-]+$/.test(name) || seen.has(name)) {
      const what = `the SignedHeaders value "${value}" is malformed; expecting distinct lower-case header names separated by ';'.`
      throw form === HEADER_FORM
        ? malformed(form, what)
        : new S3Error(
            'AuthorizationQueryParametersError',
            `Error parsing X-Amz-SignedHeaders; ${what}`,
          )
    }
    seen.add(name)
  }
  return [...names].sort()
}

/** S3 requires `host` and every `x-amz-*` header the request carries to be signed. */
function checkSignedHeaders(req: SignedRequest, signed: string[]): void {
  const set = new Set(signed)
  const missing: string[] = []
  if (!set.has('host')) missing.push('host')
  for (const name of Object.keys(req.headers)) {
    if (name.startsWith('x-amz-') && !set.has(name)) missing.push(name)
  }
  if (missing.length > 0) {
    throw new S3Error(
      'AccessDenied',
      'There were headers present in the request which were not signed',
      {
        HeadersNotSigned: missing.sort().join(', '),
      },
    )
  }
}

function parsePayloadHash(value: string): { mode: PayloadMode; hash: string; sha256?: string } {
  if (value === UNSIGNED_PAYLOAD) return { mode: 'unsigned', hash: value }
  const streaming = STREAMING_PAYLOADS[value]
  if (streaming !== undefined) return { mode: streaming, hash: value }
  if (/^[0-9a-fA-F]{64}$/.test(value)) {
    return { mode: 'signed', hash: value, sha256: value.toLowerCase() }
  }
  throw new S3Error(
    'InvalidArgument',
    'x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER or a valid sha256 value.',
    { ArgumentName: 'x-amz-content-sha256', ArgumentValue: value },
  )
}

function canonicalHeaders(headers: Record<string, string>, signed: string[]): string {
  let out = ''
  for (const name of signed) {
    let value = headers[name]
    // Some proxies drop `Expect: 100-continue` after answering it; clients that sign it
    // (aws-sdk-go v1) still signed this value. MinIO makes the same exception.
    if (value === undefined && name === 'expect') value = '100-continue'
    // The same trimming the SDK signers do: folded lines and runs of blanks become one space.
    const canonical = (value ?? '')
      .replace(/[\r\n]/g, ' ')
      .replace(/[ \t]+/g, ' ')
      .replace(/^ | $/g, '')
    out += `${name}:${canonical}\n`
  }
  return out
}

interface QueryParam {
  /** Decoded name and value, for reading the X-Amz-* parameters. */
  name: string
  value: string
  /** RFC 3986 encoded name and value, for the canonical query string. */
  encodedName: string
  encodedValue: string
}

function parseQuery(raw: string): QueryParam[] {
  const params: QueryParam[] = []
  if (raw === '') return params
  for (const part of raw.split('&')) {
    if (part === '') continue
    const eq = part.indexOf('=')
    const nameBytes = percentDecode(eq < 0 ? part : part.slice(0, eq), true)
    const valueBytes = percentDecode(eq < 0 ? '' : part.slice(eq + 1), true)
    params.push({
      name: nameBytes.toString('utf8'),
      value: valueBytes.toString('utf8'),
      encodedName: uriEncode(nameBytes),
      encodedValue: uriEncode(valueBytes),
    })
  }
  return params
}

/** Parameter names only, for the cheap look in {@link authKind}. */
function queryNames(raw: string): Set<string> {
  const names = new Set<string>()
  if (raw === '') return names
  for (const part of raw.split('&')) {
    const eq = part.indexOf('=')
    const name = eq < 0 ? part : part.slice(0, eq)
    names.add(
      name.includes('%') || name.includes('+') ? percentDecode(name, true).toString() : name,
    )
  }
  return names
}

function canonicalQuery(params: QueryParam[]): string {
  const kept = params.filter((p) => p.name.toLowerCase() !== 'x-amz-signature')
  kept.sort((a, b) =>
    a.encodedName === b.encodedName
      ? compareStrings(a.encodedValue, b.encodedValue)
      : compareStrings(a.encodedName, b.encodedName),
  )
  return kept.map((p) => `${p.encodedName}=${p.encodedValue}`).join('&')
}

/** Byte order: the encoded strings are ASCII, so code unit order is byte order. */
function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/**
 * The path as received, with the bytes SigV4's URI-encode escapes but the client left raw now
 * escaped. Existing `%XX` escapes are kept as they are.
 */
function canonicalPath(path: string): string {
  if (path === '') return '/'
  if (/^[A-Za-z0-9\-._~/]*$/.test(path)) return path
  const bytes = Buffer.from(path, 'utf8')
  let out = ''
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] ?? 0
    if (b === 0x2f) {
      out += '/'
    } else if (b === 0x25 && isHex(bytes[i + 1]) && isHex(bytes[i + 2])) {
      out += String.fromCharCode(b, bytes[i + 1] ?? 0, bytes[i + 2] ?? 0)
      i += 2
    } else {
      out += ENCODED[b]
    }
  }
  return out
}

/** Every segment decoded and encoded again: the path S3 would sign for the decoded key. */
function normalisedPath(path: string): string {
  if (path === '') return '/'
  return path
    .split('/')
    .map((segment) => uriEncode(percentDecode(segment, false)))
    .join('/')
}

/** The RFC 3986 encoding SigV4 uses: everything but A-Z a-z 0-9 - _ . ~ as upper-case %XX. */
const ENCODED: readonly string[] = Array.from({ length: 256 }, (_, b) =>
  (b >= 0x30 && b <= 0x39) ||
  (b >= 0x41 && b <= 0x5a) ||
  (b >= 0x61 && b <= 0x7a) ||
  b === 0x2d ||
  b === 0x2e ||
  b === 0x5f ||
  b === 0x7e
    ? String.fromCharCode(b)
    : `%${b.toString(16).toUpperCase().padStart(2, '0')}`,
)

function uriEncode(bytes: Uint8Array): string {
  let out = ''
  for (const b of bytes) out += ENCODED[b]
  return out
}

/** Decodes `%XX` escapes (and `+` as a space when asked) into bytes; bad escapes stay literal. */
function percentDecode(s: string, plusIsSpace: boolean): Buffer {
  const src = Buffer.from(s, 'utf8')
  if (!s.includes('%') && !(plusIsSpace && s.includes('+'))) return src
  const out = Buffer.allocUnsafe(src.length)
  let n = 0
  for (let i = 0; i < src.length; i++) {
    const b = src[i] ?? 0
    if (b === 0x25 && isHex(src[i + 1]) && isHex(src[i + 2])) {
      out[n++] = (hexValue(src[i + 1] ?? 0) << 4) | hexValue(src[i + 2] ?? 0)
      i += 2
    } else if (b === 0x2b && plusIsSpace) {
      out[n++] = 0x20
    } else {
      out[n++] = b
    }
  }
  return out.subarray(0, n)
}

function isHex(b: number | undefined): boolean {
  return b !== undefined && hexValue(b) >= 0
}

function hexValue(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30
  if (b >= 0x41 && b <= 0x46) return b - 0x37
  if (b >= 0x61 && b <= 0x66) return b - 0x57
  return -1
}

/** 'YYYYMMDDTHHMMSSZ', the only form X-Amz-Date takes. */
function parseAmzDate(value: string): Date | undefined {
  if (!/^\d{8}T\d{6}Z$/.test(value)) return undefined
  const n = (from: number, to: number) => Number(value.slice(from, to))
  const date = new Date(Date.UTC(n(0, 4), n(4, 6) - 1, n(6, 8), n(9, 11), n(11, 13), n(13, 15)))
  // Date.UTC rolls 20130231 over into March; a round trip rejects such dates.
  return amzDate(date) === value ? date : undefined
}

/** The `Date` header: an HTTP date (IMF-fixdate), or the ISO 8601 basic form some clients send. */
function parseHttpDate(value: string): Date | undefined {
  const basic = parseAmzDate(value)
  if (basic) return basic
  if (!/^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(value)) {
    return undefined
  }
  const ms = Date.parse(value)
  return Number.isNaN(ms) ? undefined : new Date(ms)
}

function isCalendarDate(value: string): boolean {
  if (!/^\d{8}$/.test(value)) return false
  const date = new Date(
    Date.UTC(Number(value.slice(0, 4)), Number(value.slice(4, 6)) - 1, Number(value.slice(6, 8))),
  )
  return amzDate(date).slice(0, 8) === value
}

/** '2013-05-24T00:00:00Z', the form S3 uses for ServerTime and Expires. */
function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z')
}

function sha256Hex(data: string): string {
  return createHash('sha256').update(data).digest('hex')
}

/** AWS's `StringToSignBytes` form: each UTF-8 byte as two hex digits, space separated. */
function hexBytes(s: string): string {
  return Buffer.from(s, 'utf8')
    .toString('hex')
    .replace(/(..)(?!$)/g, '$1 ')
}

function malformed(form: FormErrors, what: string): S3Error {
  return new S3Error(form.code, `${form.prefix}${what}`)
}

function unsupportedMechanism(): S3Error {
  return new S3Error(
    'InvalidRequest',
    'The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.',
  )
}

/**
 * The SigV4 signature of a browser-form POST policy: HMAC-SHA256 of the base64 policy text
 * under the signing key of the credential scope (date, region, service), in hex.
 */
export function postPolicySignature(
  secret: string,
  scopeDate: string,
  region: string,
  service: string,
  policyBase64: string,
): string {
  return hmac(signingKey(secret, scopeDate, region, service), policyBase64).toString('hex')
}

// The cache key must not hold the secret itself (keys end up in debug output). A request
// names its access key id, which then keys the entry; the entry keeps the secret it was
// derived from (in memory, as ClusterAccess's secret cache does) and serves only that secret,
// so an id whose secret changed misses: a string comparison instead of an HMAC per request.
// Without an id (POST policy forms), the secret enters the key through an HMAC under a key
// that never leaves the process.
const cacheKeySalt = randomBytes(32)
const signingKeys = new Map<string, { key: Buffer; secret?: string }>()

function signingKey(
  secret: string,
  date: string,
  region: string,
  service: string,
  accessKeyId?: string,
): Buffer {
  const id =
    accessKeyId !== undefined
      ? `id\n${accessKeyId}\n${date}\n${region}\n${service}`
      : JSON.stringify([hmac(cacheKeySalt, secret).toString('base64'), date, region, service])
  const cached = signingKeys.get(id)
  if (cached !== undefined && (accessKeyId === undefined || cached.secret === secret)) {
    // Least recently used first: a hit moves the entry to the end.
    signingKeys.delete(id)
    signingKeys.set(id, cached)
    return cached.key
  }
  const key = hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), service), TERMINATOR)
  signingKeys.delete(id)
  signingKeys.set(id, accessKeyId !== undefined ? { key, secret } : { key })
  if (signingKeys.size > SIGNING_KEY_CACHE_ENTRIES) {
    const oldest = signingKeys.keys().next().value
    if (oldest !== undefined) signingKeys.delete(oldest)
  }
  return key
}
