/* Design notes

POST Object: a browser's HTML form upload (multipart/form-data) to the bucket's URL. The form
carries the key, the object's headers as fields, a base64 JSON policy document and its SigV4
signature (x-amz-algorithm, x-amz-credential, x-amz-date, x-amz-signature; optionally
x-amz-security-token), then the file as the last field. An unsigned form is anonymous.

The body is parsed by busboy as it arrives. Fields come first (at most
MAX_POST_PRE_DATA_BYTES); then the policy is checked (signature, expiry, every condition,
no field left uncovered) and s3:PutObject authorized for the principal that signed it, before
any file byte is stored. The file then streams into PutObject's own write path (the
object-ops handler, so ACLs, metadata, tags and checksums behave exactly as for PutObject; the
`acl` field becomes the x-amz-acl header, the `tagging` field's XML the x-amz-tagging header).
Fields asking for what Tessera does not do (encryption, object lock, other storage classes) are
refused before anything is stored, never ignored.

The object store needs the exact size before the first byte. A form does not say it, so:
- small files (the rest of the body under POST_BUFFER_BYTES) are read whole, then stored;
- larger ones take their size from Content-Length: the body is the fields, the file part's
  headers, the file, then the closing delimiter `\r\n--boundary--\r\n`, as browsers, curl and
  the SDKs send it. The file part's start is found in the raw bytes kept until busboy reports
  it (field values cannot contain the boundary). A body that ends otherwise (fields after a
  large file) fails with MalformedPOSTRequest rather than storing a wrong object.
*/

import type { Readable } from 'node:stream'
import type { BucketRecord } from '@tessera/protocol'
import busboy from 'busboy'
import { XMLBuilder } from 'fast-xml-parser'
import type { Authenticated, RequestFacts } from '../auth/access.ts'
import type { Request, RequestBody, Response } from '../http/server.ts'
import type { S3Context, S3Deps } from './context.ts'
import { S3Error } from './errors.ts'
import { refuseUnoffered } from './headers.ts'
import { checkKey, putObject } from './object-ops.ts'
import { MAX_OBJECT_TAGS, parseTagging } from './xml.ts'

/** Largest total size of the form fields before the file, as in S3. */
export const MAX_POST_PRE_DATA_BYTES = 20 * 1024

/** Files up to this size are read whole before they are stored (their size is then exact). */
export const POST_BUFFER_BYTES = 1024 * 1024

/** The key field's placeholder for the uploaded file's name. */
const FILENAME_VARIABLE = `$\{filename}`

/** Form fields the policy does not need to name. */
const UNCHECKED_FIELDS = new Set(['x-amz-signature', 'file', 'policy'])

/** The SigV4 fields a signed form must carry, in the order S3 reports a missing one. */
const SIGV4_FIELDS: [string, string][] = [
  ['x-amz-algorithm', 'X-Amz-Algorithm'],
  ['x-amz-credential', 'X-Amz-Credential'],
  ['x-amz-date', 'X-Amz-Date'],
  ['x-amz-signature', 'X-Amz-Signature'],
  ['policy', 'Policy'],
]

/** Form fields stored with the object as the PutObject header of the same name. */
const HEADER_FIELDS = new Set([
  'cache-control',
  'content-type',
  'content-disposition',
  'content-encoding',
  'content-language',
  'content-md5',
  'expires',
  'x-amz-storage-class',
  'x-amz-website-redirect-location',
])

/** Whether a request is a form upload (POST Object) rather than another bucket POST. */
export function isFormPost(headers: Record<string, string>): boolean {
  return (headers['content-type'] ?? '').toLowerCase().startsWith('multipart/form-data')
}

export interface PostObjectInit {
  req: Request
  res: Response
  requestId: string
  bucket: string
  /** The bucket's record; undefined when it does not exist. */
  record: BucketRecord | undefined
  deps: S3Deps
  /** Called with the key once it is known, for the error document's Resource. */
  onKey?(key: string): void
}

interface FileStart {
  stream: Readable
  filename: string
}

/** Serves a POST Object request. */
export async function postObject(init: PostObjectInit): Promise<void> {
  const { req, deps } = init
  const b = init.record
  if (b === undefined) throw new S3Error('NoSuchBucket', undefined, { BucketName: init.bucket })
  const lengthHeader = req.headers['content-length']
  if (lengthHeader === undefined || !/^\d+$/.test(lengthHeader)) {
    throw new S3Error('MissingContentLength')
  }
  const total = Number(lengthHeader)
  const ctype = req.headers['content-type'] ?? ''
  const boundary = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(ctype)
  const boundaryText = boundary?.[1] ?? boundary?.[2]
  if (boundaryText === undefined) throw new S3Error('MalformedPOSTRequest')
  let bb: busboy.Busboy
  try {
    bb = busboy({
      headers: { 'content-type': ctype },
      defParamCharset: 'utf8',
      limits: { files: 1, fieldSize: MAX_POST_PRE_DATA_BYTES, fields: 1000, parts: 1002 },
    })
  } catch (err) {
    throw new S3Error('MalformedPOSTRequest', undefined, {}, { cause: err })
  }

  const fields = new Map<string, string>()
  let file: FileStart | undefined
  let failed: Error | undefined
  let wake: (() => void) | undefined
  const kick = () => {
    const w = wake
    wake = undefined
    w?.()
  }
  let closed = false
  bb.on('field', (name, value) => {
    const k = name.toLowerCase()
    if (file === undefined && !fields.has(k)) fields.set(k, value)
  })
  bb.on('file', (name, stream, info) => {
    if (file !== undefined || name.toLowerCase() !== 'file') {
      stream.resume()
      return
    }
    file = { stream, filename: info.filename ?? '' }
    kick()
  })
  bb.on('close', () => {
    closed = true
    kick()
  })
  bb.on('error', (err) => {
    failed = new S3Error('MalformedPOSTRequest', undefined, {}, { cause: err })
    file?.stream.destroy(failed)
    kick()
  })

  // Feeds the body to busboy, keeping the raw bytes until the file part begins.
  const prefix: Buffer[] = []
  let prefixBytes = 0
  let stop = false
  const pump = (async () => {
    for await (const chunk of req.body) {
      if (stop || failed) break
      if (file === undefined) {
        prefix.push(chunk)
        prefixBytes += chunk.length
      }
      const more = bb.write(chunk)
      if (file === undefined && prefixBytes > MAX_POST_PRE_DATA_BYTES + chunk.length) {
        failed = new S3Error('MaxPostPreDataLengthExceededError')
        kick()
        break
      }
      if (!more) {
        await new Promise<void>((resolve) => {
          const done = () => {
            bb.off('drain', done)
            bb.off('close', done)
            bb.off('error', done)
            resolve()
          }
          bb.on('drain', done)
          bb.on('close', done)
          bb.on('error', done)
        })
      }
    }
    if (!stop && !failed) bb.end()
  })().catch((err) => {
    failed ??= err instanceof S3Error ? err : new S3Error('IncompleteBody')
    file?.stream.destroy(failed)
    kick()
  })

  try {
    while (file === undefined && !closed && failed === undefined) {
      await new Promise<void>((r) => (wake = r))
    }
    if (failed) throw failed
    const f = file as FileStart | undefined
    const key = fields.get('key')
    if (key === undefined || key === '') {
      throw new S3Error(
        'InvalidArgument',
        "Bucket POST must contain a field named 'key'.  If it is specified, please check the order of the fields.",
        { ArgumentName: 'key', ArgumentValue: '' },
      )
    }
    const inlineFile = f === undefined ? fields.get('file') : undefined
    if (f === undefined && inlineFile === undefined) {
      throw new S3Error('InvalidArgument', 'POST requires exactly one file upload per request.', {
        ArgumentName: 'file',
        ArgumentValue: '0',
      })
    }
    const who = await authenticateForm(fields, init)
    const policy = fields.get('policy')
    const conditions = policy ? parsePolicy(policy) : undefined
    if (conditions) checkConditions(conditions, fields, b.name)

    const objectKey = key.replaceAll(FILENAME_VARIABLE, f?.filename ?? '')
    checkKey(objectKey)
    init.onKey?.(objectKey)
    const putHeaders: Record<string, string> = {}
    for (const [k, v] of fields) {
      if (HEADER_FIELDS.has(k) || k.startsWith('x-amz-meta-') || k.startsWith('x-amz-checksum-'))
        putHeaders[k] = v
    }
    if (fields.has('acl')) putHeaders['x-amz-acl'] = fields.get('acl')!
    refuseUnoffered(Object.fromEntries(fields))
    const tagging = fields.get('tagging')
    if (tagging !== undefined && tagging !== '')
      putHeaders['x-amz-tagging'] = taggingHeader(tagging)
    const params = new URLSearchParams(req.query)
    const facts: RequestFacts = {
      requestId: init.requestId,
      sourceIp: req.remoteAddress,
      secure: false,
      headers: { ...req.headers, ...putHeaders },
      params,
    }
    for (const action of putHeaders['x-amz-tagging'] !== undefined
      ? ['s3:PutObject', 's3:PutObjectTagging']
      : ['s3:PutObject']) {
      await deps.access.authorize(who, {
        action,
        bucket: b.name,
        key: objectKey,
        bucketRecord: b,
        request: facts,
      })
    }
    checkExpectedOwner(req.headers['x-amz-expected-bucket-owner'], deps)
    checkExpectedOwner(fields.get('x-amz-expected-bucket-owner'), deps)

    // The file's exact size, and its bytes.
    let size: number
    let body: AsyncIterable<Uint8Array>
    if (f === undefined) {
      const bytes = Buffer.from(inlineFile!, 'utf8')
      size = bytes.length
      body = fromList([bytes])
    } else {
      const raw = Buffer.concat(prefix)
      prefix.length = 0
      const start = fileDataStart(raw, boundaryText)
      if (start === undefined) throw new S3Error('MalformedPOSTRequest')
      if (start > MAX_POST_PRE_DATA_BYTES) throw new S3Error('MaxPostPreDataLengthExceededError')
      const bound = total - start - `\r\n--${boundaryText}--`.length
      if (bound <= POST_BUFFER_BYTES) {
        const parts: Buffer[] = []
        let n = 0
        for await (const c of f.stream) {
          n += (c as Buffer).length
          if (n > POST_BUFFER_BYTES) throw new S3Error('MalformedPOSTRequest')
          parts.push(c as Buffer)
        }
        if (failed) throw failed
        size = n
        body = fromList(parts)
      } else {
        size = bound - 2
        body = exactly(f.stream, size, () => failed)
      }
    }
    if (conditions) checkLength(conditions, size)

    const captured = new CapturedResponse()
    const ctx: S3Context = {
      req: {
        ...req,
        headers: { ...putHeaders, 'content-length': String(size) },
        body: bodyOf(body),
      },
      res: captured as unknown as Response,
      requestId: init.requestId,
      bucket: b.name,
      key: objectKey,
      params,
      who,
      facts,
      deps,
    }
    await putObject(ctx, b)
    if (captured.statusCode >= 300) {
      throw new S3Error('InternalError', 'the object write answered an unexpected status')
    }
    await pump
    answer(init, fields, b.name, objectKey, captured)
  } finally {
    stop = true
    file?.stream.resume()
    kick()
  }
}

/** Verifies the form's signature fields; an unsigned form is anonymous. */
async function authenticateForm(
  fields: Map<string, string>,
  init: PostObjectInit,
): Promise<Authenticated> {
  const present = SIGV4_FIELDS.filter(([k]) => fields.has(k))
  if (present.length === 0) {
    if (fields.has('awsaccesskeyid') || fields.has('signature')) {
      throw new S3Error(
        'InvalidRequest',
        'The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.',
      )
    }
    return {}
  }
  for (const [k, name] of SIGV4_FIELDS) {
    if (!fields.has(k)) {
      throw new S3Error(
        'InvalidArgument',
        `Bucket POST must contain a field named '${name}'.  If it is specified, please check the order of the fields.`,
        { ArgumentName: name, ArgumentValue: '' },
      )
    }
  }
  if (fields.get('x-amz-algorithm') !== 'AWS4-HMAC-SHA256') {
    throw new S3Error(
      'InvalidRequest',
      'The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.',
    )
  }
  const token = fields.get('x-amz-security-token')
  return init.deps.access.authenticatePost(
    {
      credential: fields.get('x-amz-credential')!,
      date: fields.get('x-amz-date')!,
      signature: fields.get('x-amz-signature')!,
      policy: fields.get('policy')!,
      ...(token !== undefined ? { securityToken: token } : {}),
    },
    init.req.remoteAddress,
  )
}

/**
 * The `tagging` field, a `Tagging` document as PutObjectTagging takes it, as the URL-encoded
 * x-amz-tagging header PutObject reads: same limits, and InvalidTag or MalformedXML as S3 answers.
 */
function taggingHeader(xml: string): string {
  const tags = parseTagging(xml, { maxTags: MAX_OBJECT_TAGS, resource: 'object' })
  return new URLSearchParams(tags.map((t): [string, string] => [t.key, t.value])).toString()
}

/**
 * x-amz-expected-bucket-owner (header or form field), as for every other request: a value that
 * is not an account id is malformed; another account's id is AccessDenied (every bucket belongs
 * to the cluster's account).
 */
function checkExpectedOwner(expected: string | undefined, deps: S3Deps): void {
  if (expected === undefined) return
  if (!/^\d{12}$/.test(expected)) {
    throw new S3Error(
      'InvalidBucketOwnerAWSAccountID',
      `The value of the expected bucket owner parameter must be an AWS Account ID... [${expected}]`,
    )
  }
  if (expected !== deps.access.accountId()) throw new S3Error('AccessDenied')
}

type Condition = { raw: unknown; op: 'eq' | 'starts-with' | 'range'; field: string; value: string }

const invalidPolicy = (why: string) =>
  new S3Error('InvalidPolicyDocument', `Invalid Policy: ${why}`)

/** Decodes the policy and checks its expiration; returns its conditions. */
function parsePolicy(policyBase64: string): Condition[] {
  let doc: unknown
  try {
    doc = JSON.parse(Buffer.from(policyBase64, 'base64').toString('utf8'))
  } catch {
    throw invalidPolicy('Invalid JSON.')
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw invalidPolicy('Invalid JSON.')
  }
  const d = doc as { expiration?: unknown; conditions?: unknown }
  if (d.expiration === undefined) throw invalidPolicy('Policy missing expiration.')
  const expires = typeof d.expiration === 'string' ? Date.parse(d.expiration) : Number.NaN
  if (Number.isNaN(expires)) {
    throw invalidPolicy(`Invalid 'expiration' value: '${String(d.expiration)}'`)
  }
  if (expires <= Date.now()) {
    throw new S3Error('AccessDenied', 'Invalid according to Policy: Policy expired.')
  }
  if (!Array.isArray(d.conditions)) throw invalidPolicy('Policy missing conditions.')
  return d.conditions.map((c): Condition => {
    if (Array.isArray(c)) {
      const [op, a, v] = c as unknown[]
      const opName = String(op).toLowerCase()
      if (c.length !== 3) throw invalidPolicy(`Invalid Condition: wrong number of arguments.`)
      if (opName === 'content-length-range') {
        return { raw: c, op: 'range', field: '', value: `${String(a)},${String(v)}` }
      }
      if (opName !== 'eq' && opName !== 'starts-with') {
        throw invalidPolicy(`Invalid Condition: unknown operation '${String(op)}'.`)
      }
      if (typeof a !== 'string' || typeof v !== 'string') {
        throw invalidPolicy('Invalid Condition: the field and value must be strings.')
      }
      return { raw: c, op: opName, field: a.toLowerCase(), value: v }
    }
    if (c !== null && typeof c === 'object') {
      const entries = Object.entries(c)
      if (entries.length !== 1) {
        throw invalidPolicy(
          'Invalid Simple-Condition: Simple-Conditions must have exactly one property specified.',
        )
      }
      const [k, v] = entries[0]!
      return { raw: c, op: 'eq', field: `$${k.toLowerCase()}`, value: String(v) }
    }
    throw invalidPolicy('Invalid Condition: a condition must be an array or an object.')
  })
}

/** A condition as S3's error message prints it (JSON with ", " and ": " separators). */
function showCondition(c: unknown): string {
  if (Array.isArray(c)) return `[${c.map((x) => JSON.stringify(x)).join(', ')}]`
  if (c !== null && typeof c === 'object') {
    return `{${Object.entries(c)
      .map(([k, v]) => `${JSON.stringify(k)}: ${JSON.stringify(v)}`)
      .join(', ')}}`
  }
  return JSON.stringify(c)
}

const conditionFailed = (c: Condition) =>
  new S3Error(
    'AccessDenied',
    `Invalid according to Policy: Policy Condition failed: ${showCondition(c.raw)}`,
  )

/** Checks every eq/starts-with condition and that each form field is covered by one. */
function checkConditions(conditions: Condition[], fields: Map<string, string>, bucket: string) {
  const covered = new Set<string>()
  for (const c of conditions) {
    if (c.op === 'range') continue
    if (!c.field.startsWith('$')) throw conditionFailed(c)
    const name = c.field.slice(1)
    const have = name === 'bucket' ? bucket : fields.get(name)
    covered.add(name)
    // starts-with "" accepts any value.
    const ok =
      c.op === 'eq'
        ? have === c.value
        : c.value === '' ||
          (have !== undefined &&
            (name === 'content-type'
              ? have.split(',').every((v) => v.trim().startsWith(c.value))
              : have.startsWith(c.value)))
    if (!ok) throw conditionFailed(c)
  }
  const extra = [...fields.keys()].filter(
    (k) => !UNCHECKED_FIELDS.has(k) && !k.startsWith('x-ignore-') && !covered.has(k),
  )
  if (extra.length > 0) {
    throw new S3Error(
      'AccessDenied',
      `Invalid according to Policy: Extra input fields: ${extra.join(', ')}`,
    )
  }
}

/** Checks the content-length-range conditions against the file's size. */
function checkLength(conditions: Condition[], size: number): void {
  for (const c of conditions) {
    if (c.op !== 'range') continue
    const [lo, hi] = (c.raw as unknown[]).slice(1).map((x) => Number(x))
    if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo! < 0 || hi! < lo!) {
      throw conditionFailed(c)
    }
    if (size < lo!) {
      throw new S3Error(
        'EntityTooSmall',
        'Your proposed upload is smaller than the minimum allowed size',
        { ProposedSize: String(size), MinSizeAllowed: String(lo) },
      )
    }
    if (size > hi!) {
      throw new S3Error('EntityTooLarge', 'Your proposed upload exceeds the maximum allowed size', {
        ProposedSize: String(size),
        MaxSizeAllowed: String(hi),
      })
    }
  }
}

/** The offset of the first byte of the `file` part's data in the raw body, if it is there. */
function fileDataStart(raw: Buffer, boundary: string): number | undefined {
  const delimiter = Buffer.from(`--${boundary}`)
  let at = raw.indexOf(delimiter)
  while (at >= 0) {
    const headStart = at + delimiter.length + 2
    const headEnd = raw.indexOf('\r\n\r\n', headStart)
    if (headEnd < 0) return undefined
    const head = raw.subarray(headStart, headEnd).toString('utf8')
    if (/content-disposition:[^\r\n]*;\s*name="?file"?(;|\s*$|\r)/im.test(head)) return headEnd + 4
    at = raw.indexOf(delimiter, headEnd)
  }
  return undefined
}

/** Yields exactly `size` bytes of the file, refusing a file that turns out longer or shorter. */
async function* exactly(
  stream: Readable,
  size: number,
  failed: () => Error | undefined,
): AsyncGenerator<Uint8Array> {
  let n = 0
  const misfit = () =>
    new S3Error(
      'MalformedPOSTRequest',
      'The file of a form upload larger than 1 MiB must be the last field, followed only by the closing boundary.',
    )
  for await (const c of stream) {
    const chunk = c as Buffer
    if (n + chunk.length > size) throw misfit()
    n += chunk.length
    yield chunk
  }
  const f = failed()
  if (f) throw f
  if (n !== size) throw misfit()
}

async function* fromList(list: Uint8Array[]): AsyncGenerator<Uint8Array> {
  yield* list
}

/** A request body over an iterable, for PutObject's payload reader. */
function bodyOf(source: AsyncIterable<Uint8Array>): RequestBody {
  return {
    received: 0,
    ended: false,
    stripes() {},
    discard() {},
    [Symbol.asyncIterator]: () => source[Symbol.asyncIterator](),
  } as unknown as RequestBody
}

/** Collects what PutObject answers, to answer the form's way instead. */
class CapturedResponse {
  statusCode = 200
  headers = new Map<string, string>()
  aborted = false
  finished = false
  bytesSent = 0
  status(code: number): this {
    this.statusCode = code
    return this
  }
  header(name: string, value: string | number): this {
    this.headers.set(name.toLowerCase(), String(value))
    return this
  }
  setHeader(name: string, value: string | number): this {
    return this.header(name, value)
  }
  end(): void {
    this.finished = true
  }
  endWithoutBody(): void {
    this.finished = true
  }
}

const builder = new XMLBuilder({})

function encodeKey(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/')
}

/** success_action_redirect (303), or success_action_status 200/201/204 (default 204). */
function answer(
  init: PostObjectInit,
  fields: Map<string, string>,
  bucket: string,
  key: string,
  put: CapturedResponse,
): void {
  const res = init.res
  const etag = put.headers.get('etag') ?? ''
  const host = init.req.headers.host ?? 'localhost'
  const virtual = init.req.rawPath === '/' || init.req.rawPath === ''
  const location = `http://${host}/${virtual ? '' : `${encodeURIComponent(bucket)}/`}${encodeKey(key)}`
  res.header('ETag', etag)
  const version = put.headers.get('x-amz-version-id')
  if (version !== undefined) res.header('x-amz-version-id', version)
  const redirect = fields.get('success_action_redirect') ?? fields.get('redirect')
  if (redirect !== undefined && /^https?:\/\//i.test(redirect)) {
    try {
      const url = new URL(redirect)
      url.searchParams.append('bucket', bucket)
      url.searchParams.append('key', key)
      url.searchParams.append('etag', etag)
      res.header('Location', url.toString()).status(303).end()
      return
    } catch {
      // An unusable redirect falls back to success_action_status, as in S3.
    }
  }
  res.header('Location', location)
  const status = fields.get('success_action_status')
  if (status === '201') {
    const xml = builder.build({
      PostResponse: { Location: location, Bucket: bucket, Key: key, ETag: etag },
    })
    res
      .status(201)
      .header('Content-Type', 'application/xml')
      .end(`<?xml version="1.0" encoding="UTF-8"?>\n${xml}`)
    return
  }
  res.status(status === '200' ? 200 : 204).end()
}
