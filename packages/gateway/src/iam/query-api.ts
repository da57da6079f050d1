/**
 * The AWS query-protocol front of the identity operations: the IAM API (Version 2010-05-08) and
 * the STS API (Version 2011-06-15), as the aws CLI, the SDKs and Terraform speak them. A request
 * is an `Action` and its parameters (form body or query string, already merged into one
 * `URLSearchParams` by the caller); the answer is AWS's XML document for that action, or AWS's
 * `ErrorResponse`.
 *
 * Design notes
 * - This layer checks what AWS's API model checks before an operation runs (required members,
 *   lengths, patterns, enums, ranges) and answers with AWS's `ValidationError` wording, all
 *   violations of one request in one message. Everything else (existence, authorization,
 *   policy grammar, limits) is the operations' and comes back as an `IamError`.
 * - Values that could be, or hold, credentials (access key ids, policy documents) are never
 *   echoed in an error message; other offending values are, as AWS does.
 * - Every user and policy lives at the path `/`: a `Path` other than `/` is refused rather than
 *   dropped, and `PathPrefix` filters accordingly. `PermissionsBoundary` (CreateUser) and
 *   `PolicyArns` (AssumeRole) are refused: ignoring either would grant more than was asked
 *   for. Tags, `ExternalId`, `SourceIdentity` and MFA parameters are accepted and ignored.
 * - List markers are opaque to clients: base64url of the sort key of the first item of the next
 *   page. Lists are sorted by that key, so paging survives entries added or removed between
 *   pages without repeating or skipping the others.
 * - Times are ISO 8601 in UTC without milliseconds (`2026-11-23T10:00:00Z`), as IAM writes them.
 * - Documents carry no XML declaration, as AWS's query APIs send them.
 */
import { xmlEscape } from '../s3/xml.ts'
import {
  type Caller,
  IAM_ERROR_STATUS,
  IamError,
  type IamOperations,
  type KeyView,
  type PolicyView,
  type UserView,
} from './operations.ts'

/** An answer of the query APIs: HTTP status and XML body (Content-Type `text/xml`). */
export interface QueryResult {
  status: number
  body: string
}

export const IAM_VERSION = '2010-05-08'
export const STS_VERSION = '2011-06-15'
export const IAM_XMLNS = 'https://iam.amazonaws.com/doc/2010-05-08/'
export const STS_XMLNS = 'https://sts.amazonaws.com/doc/2011-06-15/'

export type QueryService = 'iam' | 'sts'

const SERVICES: Record<QueryService, { version: string; xmlns: string }> = {
  iam: { version: IAM_VERSION, xmlns: IAM_XMLNS },
  sts: { version: STS_VERSION, xmlns: STS_XMLNS },
}

/** Page size of the list actions when `MaxItems` is not given. */
export const DEFAULT_MAX_ITEMS = 100
/** Largest `MaxItems` a list action accepts. */
export const MAX_MAX_ITEMS = 1000

/** The only version a managed policy has. */
export const POLICY_VERSION_ID = 'v1'

/** Called with an unexpected (non-`IamError`) failure before it is answered as ServiceFailure. */
export type InternalErrorHook = (err: unknown, action: string) => void

const SERVICE_FAILURE_MESSAGE =
  'The request processing has failed because of an unknown error, exception or failure.'

// ---------------------------------------------------------------------------------------------
// Errors

// Codes the query front answers that are not IamErrorCodes (mostly authentication failures the
// caller of this module produces), with AWS's statuses.
const OTHER_ERROR_STATUS: Readonly<Record<string, number>> = {
  IncompleteSignature: 400,
  InternalFailure: 500,
  InvalidParameterCombination: 400,
  InvalidParameterValue: 400,
  MalformedQueryString: 404,
  MissingAuthenticationToken: 403,
  MissingParameter: 400,
  NotImplemented: 501,
  RequestExpired: 400,
  ServiceUnavailable: 503,
  SignatureDoesNotMatch: 403,
  Throttling: 400,
}

/** The HTTP status AWS answers a query-API error code with (400 for codes it does not know). */
export function queryErrorStatus(code: string): number {
  if (Object.hasOwn(IAM_ERROR_STATUS, code)) {
    return IAM_ERROR_STATUS[code as keyof typeof IAM_ERROR_STATUS]
  }
  return Object.hasOwn(OTHER_ERROR_STATUS, code) ? (OTHER_ERROR_STATUS[code] ?? 400) : 400
}

/**
 * AWS's query-API error document: `<ErrorResponse xmlns=…><Error><Type>Sender|Receiver</Type>
 * <Code/><Message/></Error><RequestId/></ErrorResponse>`, Type Receiver for codes answered with
 * a 5xx status.
 */
export function queryErrorXml(
  service: QueryService,
  code: string,
  message: string,
  requestId: string,
): string {
  const type = queryErrorStatus(code) >= 500 ? 'Receiver' : 'Sender'
  return (
    `<ErrorResponse xmlns="${SERVICES[service].xmlns}">` +
    node('Error', leaf('Type', type), leaf('Code', code), leaf('Message', message)) +
    leaf('RequestId', requestId) +
    '</ErrorResponse>'
  )
}

/** An error answer: {@link queryErrorXml} with the status {@link queryErrorStatus} gives. */
export function queryError(
  service: QueryService,
  code: string,
  message: string,
  requestId: string,
): QueryResult {
  return {
    status: queryErrorStatus(code),
    body: queryErrorXml(service, code, message, requestId),
  }
}

// ---------------------------------------------------------------------------------------------
// XML

// A fragment of already-escaped XML.
type Xml = string

function leaf(name: string, value: string | number | boolean): Xml {
  return `<${name}>${xmlEscape(String(value))}</${name}>`
}

function optionalLeaf(name: string, value: string | number | undefined): Xml {
  return value === undefined ? '' : leaf(name, value)
}

function node(name: string, ...children: Xml[]): Xml {
  return `<${name}>${children.join('')}</${name}>`
}

function memberList(name: string, members: readonly Xml[]): Xml {
  return node(name, ...members.map((m) => node('member', m)))
}

/**
 * The success document of `action`: its `…Result` element when the action has a result, then
 * `ResponseMetadata`.
 */
export function queryResponseXml(
  service: QueryService,
  action: string,
  result: string | undefined,
  requestId: string,
): string {
  return (
    `<${action}Response xmlns="${SERVICES[service].xmlns}">` +
    (result === undefined ? '' : node(`${action}Result`, result)) +
    node('ResponseMetadata', leaf('RequestId', requestId)) +
    `</${action}Response>`
  )
}

/** A time as IAM and STS write it: ISO 8601 in UTC, whole seconds, `Z`. */
export function isoSeconds(epochMs: number): string {
  return new Date(epochMs).toISOString().replace(/\.\d{3}Z$/, 'Z')
}

/**
 * A policy document as IAM returns it: percent-encoded per RFC 3986 (every byte of its UTF-8
 * form except the unreserved `A–Z a–z 0–9 - . _ ~`), which the aws CLI and SDKs decode.
 */
export function encodePolicyDocument(document: string): string {
  return encodeURIComponent(document).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  )
}

// ---------------------------------------------------------------------------------------------
// Parameters

/** Constraints on a string parameter, as AWS's API model states them. */
export interface StringRule {
  /** Length in UTF-16 code units, as AWS counts. */
  min?: number
  max?: number
  /** Matched against the whole value. */
  pattern?: RegExp
  /** The pattern as AWS's message quotes it. */
  patternText?: string
  /** Never echo the value in an error message. */
  redact?: boolean
}

const NAME_CHARS = '[\\w+=,.@-]+'

export const USER_NAME: StringRule = {
  min: 1,
  max: 64,
  pattern: /^[\w+=,.@-]+$/,
  patternText: NAME_CHARS,
}
/** The user name of actions on an existing user (AWS allows 128 there). */
export const EXISTING_USER_NAME: StringRule = { ...USER_NAME, max: 128 }
export const POLICY_NAME: StringRule = {
  min: 1,
  max: 128,
  pattern: /^[\w+=,.@-]+$/,
  patternText: NAME_CHARS,
}
export const ACCESS_KEY_ID: StringRule = {
  min: 16,
  max: 128,
  pattern: /^\w+$/,
  patternText: '[\\w]+',
  redact: true,
}
export const POLICY_DOCUMENT: StringRule = {
  min: 1,
  max: 131072,
  pattern: /^[\t\n\r\u0020-\u00ff]+$/,
  patternText: '[\\u0009\\u000A\\u000D\\u0020-\\u00FF]+',
  redact: true,
}
/** AssumeRole's inline session policy; its size limit is the account's, checked by the operation. */
export const SESSION_POLICY: StringRule = { ...POLICY_DOCUMENT }
export const ARN: StringRule = { min: 20, max: 2048 }
export const ROLE_ARN: StringRule = {
  min: 20,
  max: 2048,
  pattern: /^[\t\n\r\u0020-\u007e\u0085\u00a0-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]+$/u,
  patternText:
    '[\\u0009\\u000A\\u000D\\u0020-\\u007E\\u0085\\u00A0-\\uD7FF\\uE000-\\uFFFD\\u10000-\\u10FFFF]+',
}
export const ROLE_SESSION_NAME: StringRule = {
  min: 2,
  max: 64,
  pattern: /^[\w+=,.@-]*$/,
  patternText: '[\\w+=,.@-]*',
}
export const PATH: StringRule = {
  min: 1,
  max: 512,
  pattern: /^(?:\/|\/[\u0021-\u007f]+\/)$/,
  patternText: '(\\u002F)|(\\u002F[\\u0021-\\u007F]+\\u002F)',
}
export const PATH_PREFIX: StringRule = {
  min: 1,
  max: 512,
  pattern: /^\/[\u0021-\u007f]*$/,
  patternText: '\\u002F[\\u0021-\\u007F]*',
}
export const POLICY_PATH: StringRule = {
  min: 1,
  max: 512,
  pattern: /^(?:\/[A-Za-z0-9.,+@=_-]+)*\/$/,
  patternText: '((/[A-Za-z0-9\\.,\\+@=_-]+)*)/',
}
export const POLICY_DESCRIPTION: StringRule = { max: 1000 }
export const POLICY_VERSION: StringRule = {
  pattern: /^v[1-9][0-9]*(?:\.[A-Za-z0-9-]*)?$/,
  patternText: 'v[1-9][0-9]*(\\.[A-Za-z0-9-]*)?',
}
export const MARKER: StringRule = {
  min: 1,
  max: 320,
  pattern: /^[\u0020-\u00ff]+$/,
  patternText: '[\\u0020-\\u00FF]+',
}

// Longest offending value quoted in a validation message.
const MAX_ECHO = 256

/**
 * Reads and checks the parameters of one request. Each reader records every violation instead
 * of throwing; {@link QueryParams.check} then throws one `ValidationError` naming them all, in
 * AWS's words ("2 validation errors detected: Value null at 'userName' failed to satisfy
 * constraint: Member must not be null; …"). Members are named as AWS names them in messages:
 * the parameter with its first letter in lower case.
 */
export class QueryParams {
  readonly #params: URLSearchParams
  readonly #violations: string[] = []

  constructor(params: URLSearchParams) {
    this.#params = params
  }

  /** Whether any parameter is `name` or starts with `name.` (list and map members). */
  has(name: string): boolean {
    for (const key of this.#params.keys()) {
      if (key === name || key.startsWith(`${name}.`)) return true
    }
    return false
  }

  /** The violations recorded so far, as AWS words each. */
  get violations(): readonly string[] {
    return this.#violations
  }

  /** A required string: `''` when missing or invalid (the violation is recorded). */
  required(name: string, rule: StringRule): string {
    const value = this.#params.get(name)
    if (value === null) {
      this.#violations.push(
        `Value null at '${member(name)}' failed to satisfy constraint: Member must not be null`,
      )
      return ''
    }
    return this.#checkString(name, value, rule) ? value : ''
  }

  /** An optional string: undefined when absent (or invalid, the violation being recorded). */
  optional(name: string, rule: StringRule): string | undefined {
    const value = this.#params.get(name)
    if (value === null) return undefined
    return this.#checkString(name, value, rule) ? value : undefined
  }

  /** An optional integer within [min, max]. */
  integer(name: string, min: number, max: number): number | undefined {
    const raw = this.#params.get(name)
    if (raw === null) return undefined
    const text = raw.trim()
    if (!/^[+-]?\d{1,15}$/.test(text)) {
      this.#violate(name, raw, 'Member must be an integer', false)
      return undefined
    }
    const value = Number(text)
    if (value < min) {
      this.#violate(name, raw, `Member must have value greater than or equal to ${min}`, false)
      return undefined
    }
    if (value > max) {
      this.#violate(name, raw, `Member must have value less than or equal to ${max}`, false)
      return undefined
    }
    return value
  }

  /** An optional boolean (`true` or `false`, in any case). */
  boolean(name: string): boolean | undefined {
    const raw = this.#params.get(name)
    if (raw === null) return undefined
    const text = raw.trim().toLowerCase()
    if (text === 'true') return true
    if (text === 'false') return false
    this.#violate(name, raw, 'Member must be a boolean', false)
    return undefined
  }

  /** An optional member of an enum. */
  oneOf<T extends string>(name: string, values: readonly T[]): T | undefined {
    const raw = this.#params.get(name)
    if (raw === null) return undefined
    if ((values as readonly string[]).includes(raw)) return raw as T
    this.#violate(name, raw, `Member must satisfy enum value set: [${values.join(', ')}]`, false)
    return undefined
  }

  /** A required member of an enum: the first value when missing or invalid (recorded). */
  requiredOneOf<T extends string>(name: string, values: readonly T[]): T {
    if (this.#params.get(name) === null) {
      this.required(name, {})
    }
    return this.oneOf(name, values) ?? (values[0] as T)
  }

  /** `MaxItems` (1–1000, default 100) and `Marker` of a list action. */
  page(): { maxItems: number; marker?: string } {
    const maxItems = this.integer('MaxItems', 1, MAX_MAX_ITEMS) ?? DEFAULT_MAX_ITEMS
    const marker = this.optional('Marker', MARKER)
    return marker === undefined ? { maxItems } : { maxItems, marker }
  }

  /** Throws the `ValidationError` for every violation recorded, if there is one. */
  check(): void {
    const n = this.#violations.length
    if (n === 0) return
    throw new IamError(
      'ValidationError',
      `${n} validation error${n === 1 ? '' : 's'} detected: ${this.#violations.join('; ')}`,
    )
  }

  #checkString(name: string, value: string, rule: StringRule): boolean {
    const redact = rule.redact === true
    if (rule.min !== undefined && value.length < rule.min) {
      const constraint = `Member must have length greater than or equal to ${rule.min}`
      this.#violate(name, value, constraint, redact)
      return false
    }
    if (rule.max !== undefined && value.length > rule.max) {
      const constraint = `Member must have length less than or equal to ${rule.max}`
      this.#violate(name, value, constraint, redact)
      return false
    }
    if (rule.pattern !== undefined && !rule.pattern.test(value)) {
      const constraint = `Member must satisfy regular expression pattern: ${rule.patternText ?? rule.pattern.source}`
      this.#violate(name, value, constraint, redact)
      return false
    }
    return true
  }

  #violate(name: string, value: string, constraint: string, redact: boolean): void {
    const shown = redact ? '' : ` '${echo(value)}'`
    this.#violations.push(
      `Value${shown} at '${member(name)}' failed to satisfy constraint: ${constraint}`,
    )
  }
}

function member(name: string): string {
  return name.charAt(0).toLowerCase() + name.slice(1)
}

function echo(value: string): string {
  return value.length <= MAX_ECHO ? value : `${value.slice(0, MAX_ECHO)}...`
}

// ---------------------------------------------------------------------------------------------
// Pagination

/** The marker that resumes a list at the item whose sort key is `key`. */
export function encodeMarker(key: string): string {
  return Buffer.from(key, 'utf8').toString('base64url')
}

/** The sort key a marker resumes at; undefined when the marker is not one of ours. */
export function decodeMarker(marker: string): string | undefined {
  if (!/^[A-Za-z0-9_-]+$/.test(marker)) return undefined
  const key = Buffer.from(marker, 'base64url').toString('utf8')
  return encodeMarker(key) === marker ? key : undefined
}

/** One page of a list. */
export interface Page<T> {
  items: T[]
  isTruncated: boolean
  /** Where the next page starts, when there is one. */
  marker?: string
}

/**
 * The page of `items` (in any order) that starts at `marker` and holds at most `maxItems`,
 * items ordered by `keyOf` (UTF-16 code unit order). A marker that is not one of ours is a
 * ValidationError.
 */
export function paginate<T>(
  items: readonly T[],
  keyOf: (item: T) => string,
  opts: { maxItems: number; marker?: string | undefined },
): Page<T> {
  const sorted = items
    .map((item) => ({ item, key: keyOf(item) }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
  let start = 0
  if (opts.marker !== undefined) {
    const from = decodeMarker(opts.marker)
    if (from === undefined) {
      throw new IamError(
        'ValidationError',
        'The Marker is not one that a previous response returned.',
      )
    }
    while (start < sorted.length && (sorted[start]?.key ?? '') < from) start++
  }
  const end = Math.min(sorted.length, start + opts.maxItems)
  const pageItems = sorted.slice(start, end).map((s) => s.item)
  const next = sorted[end]
  if (next === undefined) return { items: pageItems, isTruncated: false }
  return { items: pageItems, isTruncated: true, marker: encodeMarker(next.key) }
}

function pageXml(listName: string, members: readonly Xml[], page: Page<unknown>): Xml {
  return (
    memberList(listName, members) +
    leaf('IsTruncated', page.isTruncated) +
    optionalLeaf('Marker', page.marker)
  )
}

// ---------------------------------------------------------------------------------------------
// Result elements

// A user's fields, as the User element and list members hold them.
function userFieldsXml(u: UserView): Xml {
  // The account's root user has neither path nor name, as AWS shows it.
  const root = u.arn.endsWith(':root')
  return (
    (root ? '' : leaf('Path', '/') + leaf('UserName', u.name)) +
    leaf('UserId', u.id) +
    leaf('Arn', u.arn) +
    leaf('CreateDate', isoSeconds(u.created))
  )
}

function keyMetadataXml(k: KeyView): Xml {
  return (
    leaf('UserName', k.user) +
    leaf('AccessKeyId', k.id) +
    leaf('Status', k.status) +
    leaf('CreateDate', isoSeconds(k.created))
  )
}

function policyXml(p: PolicyView, withDescription: boolean): Xml {
  return (
    leaf('PolicyName', p.name) +
    leaf('PolicyId', p.id) +
    leaf('Arn', p.arn) +
    leaf('Path', '/') +
    leaf('DefaultVersionId', POLICY_VERSION_ID) +
    leaf('AttachmentCount', p.attachmentCount) +
    leaf('PermissionsBoundaryUsageCount', 0) +
    leaf('IsAttachable', true) +
    (withDescription ? optionalLeaf('Description', p.description) : '') +
    leaf('CreateDate', isoSeconds(p.created)) +
    leaf('UpdateDate', isoSeconds(p.updated))
  )
}

// Everything lives at '/', so a path prefix matches all or nothing.
function atRoot(pathPrefix: string | undefined): boolean {
  return pathPrefix === undefined || pathPrefix === '/'
}

function onlyRootPath(p: QueryParams, rule: StringRule): void {
  const path = p.optional('Path', rule)
  p.check()
  if (path !== undefined && path !== '/') {
    throw new IamError('InvalidInput', 'Tessera keeps every user and policy at the path /.')
  }
}

// ---------------------------------------------------------------------------------------------
// IAM actions

// What an action writes inside its …Result element; undefined for actions without a result.
type Action = (ops: IamOperations, c: Caller, p: QueryParams) => Promise<Xml | undefined>

const IAM_ACTIONS = new Map<string, Action>([
  [
    'CreateUser',
    async (ops, c, p) => {
      const name = p.required('UserName', USER_NAME)
      p.optional('PermissionsBoundary', ARN)
      onlyRootPath(p, PATH)
      if (p.has('PermissionsBoundary')) {
        throw new IamError('InvalidInput', 'Tessera does not support permissions boundaries.')
      }
      return node('User', userFieldsXml(await ops.createUser(c, { name })))
    },
  ],
  [
    'GetUser',
    async (ops, c, p) => {
      const name = p.optional('UserName', EXISTING_USER_NAME)
      p.check()
      return node('User', userFieldsXml(await ops.getUser(c, name)))
    },
  ],
  [
    'ListUsers',
    async (ops, c, p) => {
      const prefix = p.optional('PathPrefix', PATH_PREFIX)
      const opts = p.page()
      p.check()
      const users = atRoot(prefix) ? await ops.listUsers(c) : []
      const page = paginate(users, (u) => u.name, opts)
      return pageXml('Users', page.items.map(userFieldsXml), page)
    },
  ],
  [
    'DeleteUser',
    async (ops, c, p) => {
      const name = p.required('UserName', EXISTING_USER_NAME)
      p.check()
      await ops.deleteUser(c, name)
      return undefined
    },
  ],
  [
    'CreateAccessKey',
    async (ops, c, p) => {
      const user = p.optional('UserName', EXISTING_USER_NAME)
      p.check()
      const { key, secretAccessKey } = await ops.createAccessKey(
        c,
        user === undefined ? {} : { user },
      )
      return node(
        'AccessKey',
        leaf('UserName', key.user),
        leaf('AccessKeyId', key.id),
        leaf('Status', key.status),
        leaf('SecretAccessKey', secretAccessKey),
        leaf('CreateDate', isoSeconds(key.created)),
      )
    },
  ],
  [
    'ListAccessKeys',
    async (ops, c, p) => {
      const user = p.optional('UserName', EXISTING_USER_NAME)
      const opts = p.page()
      p.check()
      // Service accounts have their own listing; ListAccessKeys shows access keys only.
      const keys = (await ops.listAccessKeys(c, user)).filter((k) => k.kind === 'key')
      const page = paginate(keys, (k) => k.id, opts)
      return pageXml('AccessKeyMetadata', page.items.map(keyMetadataXml), page)
    },
  ],
  [
    'UpdateAccessKey',
    async (ops, c, p) => {
      const user = p.optional('UserName', EXISTING_USER_NAME)
      const id = p.required('AccessKeyId', ACCESS_KEY_ID)
      const status = p.requiredOneOf('Status', ['Active', 'Inactive'] as const)
      p.check()
      await ops.updateAccessKey(c, id, status, user)
      return undefined
    },
  ],
  [
    'DeleteAccessKey',
    async (ops, c, p) => {
      const user = p.optional('UserName', EXISTING_USER_NAME)
      const id = p.required('AccessKeyId', ACCESS_KEY_ID)
      p.check()
      await ops.deleteAccessKey(c, id, user)
      return undefined
    },
  ],
  [
    'PutUserPolicy',
    async (ops, c, p) => {
      const user = p.required('UserName', EXISTING_USER_NAME)
      const name = p.required('PolicyName', POLICY_NAME)
      const document = p.required('PolicyDocument', POLICY_DOCUMENT)
      p.check()
      await ops.putUserPolicy(c, user, name, document)
      return undefined
    },
  ],
  [
    'GetUserPolicy',
    async (ops, c, p) => {
      const user = p.required('UserName', EXISTING_USER_NAME)
      const name = p.required('PolicyName', POLICY_NAME)
      p.check()
      const document = await ops.getUserPolicy(c, user, name)
      return (
        leaf('UserName', user) +
        leaf('PolicyName', name) +
        leaf('PolicyDocument', encodePolicyDocument(document))
      )
    },
  ],
  [
    'DeleteUserPolicy',
    async (ops, c, p) => {
      const user = p.required('UserName', EXISTING_USER_NAME)
      const name = p.required('PolicyName', POLICY_NAME)
      p.check()
      await ops.deleteUserPolicy(c, user, name)
      return undefined
    },
  ],
  [
    'ListUserPolicies',
    async (ops, c, p) => {
      const user = p.required('UserName', EXISTING_USER_NAME)
      const opts = p.page()
      p.check()
      const page = paginate(await ops.listUserPolicies(c, user), (n) => n, opts)
      return pageXml(
        'PolicyNames',
        page.items.map((n) => xmlEscape(n)),
        page,
      )
    },
  ],
  [
    'CreatePolicy',
    async (ops, c, p) => {
      const name = p.required('PolicyName', POLICY_NAME)
      const document = p.required('PolicyDocument', POLICY_DOCUMENT)
      const description = p.optional('Description', POLICY_DESCRIPTION)
      onlyRootPath(p, POLICY_PATH)
      const policy = await ops.createPolicy(c, {
        name,
        document,
        ...(description ? { description } : {}),
      })
      // AWS leaves Description out of CreatePolicy's answer; GetPolicy shows it.
      return node('Policy', policyXml(policy, false))
    },
  ],
  [
    'GetPolicy',
    async (ops, c, p) => {
      const arn = p.required('PolicyArn', ARN)
      p.check()
      return node('Policy', policyXml(await ops.getPolicy(c, arn), true))
    },
  ],
  [
    'GetPolicyVersion',
    async (ops, c, p) => {
      const arn = p.required('PolicyArn', ARN)
      const version = p.required('VersionId', POLICY_VERSION)
      p.check()
      const policy = await ops.getPolicy(c, arn)
      if (version !== POLICY_VERSION_ID) {
        throw new IamError(
          'NoSuchEntity',
          `Policy ${arn} version ${version} does not exist or is not attachable.`,
        )
      }
      return node(
        'PolicyVersion',
        leaf('Document', encodePolicyDocument(policy.document)),
        leaf('VersionId', POLICY_VERSION_ID),
        leaf('IsDefaultVersion', true),
        leaf('CreateDate', isoSeconds(policy.updated)),
      )
    },
  ],
  [
    'ListPolicies',
    async (ops, c, p) => {
      const scope = p.oneOf('Scope', ['All', 'AWS', 'Local'] as const) ?? 'All'
      const onlyAttached = p.boolean('OnlyAttached') ?? false
      const prefix = p.optional('PathPrefix', POLICY_PATH)
      const usage = p.oneOf('PolicyUsageFilter', [
        'PermissionsPolicy',
        'PermissionsBoundary',
      ] as const)
      const opts = p.page()
      p.check()
      // No policy is ever used as a permissions boundary.
      const listed =
        atRoot(prefix) && usage !== 'PermissionsBoundary' ? await ops.listPolicies(c, scope) : []
      const policies = onlyAttached ? listed.filter((x) => x.attachmentCount > 0) : listed
      const page = paginate(policies, (x) => x.arn, opts)
      // Listings leave Description out, as AWS's do.
      return pageXml(
        'Policies',
        page.items.map((x) => policyXml(x, false)),
        page,
      )
    },
  ],
  [
    'DeletePolicy',
    async (ops, c, p) => {
      const arn = p.required('PolicyArn', ARN)
      p.check()
      await ops.deletePolicy(c, arn)
      return undefined
    },
  ],
  [
    'AttachUserPolicy',
    async (ops, c, p) => {
      const user = p.required('UserName', USER_NAME)
      const arn = p.required('PolicyArn', ARN)
      p.check()
      await ops.attachUserPolicy(c, user, arn)
      return undefined
    },
  ],
  [
    'DetachUserPolicy',
    async (ops, c, p) => {
      const user = p.required('UserName', USER_NAME)
      const arn = p.required('PolicyArn', ARN)
      p.check()
      await ops.detachUserPolicy(c, user, arn)
      return undefined
    },
  ],
  [
    'ListAttachedUserPolicies',
    async (ops, c, p) => {
      const user = p.required('UserName', USER_NAME)
      const prefix = p.optional('PathPrefix', POLICY_PATH)
      const opts = p.page()
      p.check()
      const attached = atRoot(prefix) ? await ops.listAttachedUserPolicies(c, user) : []
      const page = paginate(attached, (a) => a.arn, opts)
      return pageXml(
        'AttachedPolicies',
        page.items.map((a) => leaf('PolicyName', a.name) + leaf('PolicyArn', a.arn)),
        page,
      )
    },
  ],
])

// ---------------------------------------------------------------------------------------------
// STS actions

/** The 12-digit account id in an IAM or STS ARN (`arn:aws:iam::<id>:…`); '' when it has none. */
export function accountOfArn(arn: string): string {
  return /^arn:[^:]*:[^:]*:[^:]*:(\d{12}):/.exec(arn)?.[1] ?? ''
}

const STS_ACTIONS = new Map<string, Action>([
  [
    'AssumeRole',
    async (ops, c, p) => {
      // AWS requires RoleArn and RoleSessionName; the operations do not (MinIO's clients send
      // neither), so they are checked only when present.
      const roleArn = p.optional('RoleArn', ROLE_ARN)
      const roleSessionName = p.optional('RoleSessionName', ROLE_SESSION_NAME)
      const durationSeconds = p.integer('DurationSeconds', 900, 43200)
      const policy = p.optional('Policy', SESSION_POLICY)
      p.check()
      if (p.has('PolicyArns')) {
        throw new IamError(
          'ValidationError',
          'Tessera does not support managed session policies (PolicyArns); pass the session policy inline as Policy.',
        )
      }
      const creds = await ops.assumeRole(c, {
        ...(roleArn === undefined ? {} : { roleArn }),
        ...(roleSessionName === undefined ? {} : { roleSessionName }),
        ...(durationSeconds === undefined ? {} : { durationSeconds }),
        ...(policy === undefined ? {} : { policy }),
      })
      return (
        node(
          'AssumedRoleUser',
          leaf('Arn', creds.assumedRoleArn),
          leaf('AssumedRoleId', creds.assumedRoleId),
        ) +
        node(
          'Credentials',
          leaf('AccessKeyId', creds.accessKeyId),
          leaf('SecretAccessKey', creds.secretAccessKey),
          leaf('SessionToken', creds.sessionToken),
          leaf('Expiration', isoSeconds(creds.expiration)),
        ) +
        (policy === undefined ? '' : optionalLeaf('PackedPolicySize', creds.packedPolicySize))
      )
    },
  ],
  [
    'GetCallerIdentity',
    async (_ops, c, p) => {
      p.check()
      const { arn, userId } = c.principal
      return leaf('Arn', arn) + leaf('UserId', userId) + leaf('Account', accountOfArn(arn))
    },
  ],
])

// ---------------------------------------------------------------------------------------------
// Entry points

const ACTIONS: Record<QueryService, ReadonlyMap<string, Action>> = {
  iam: IAM_ACTIONS,
  sts: STS_ACTIONS,
}

/**
 * Checks a request's `Action` and `Version` against what `service` offers: undefined when the
 * action can run, else the error answer (MissingAction; InvalidAction for an action the service
 * does not have or a Version other than its own).
 */
export function checkQueryAction(
  service: QueryService,
  params: URLSearchParams,
  requestId: string,
): QueryResult | undefined {
  const action = params.get('Action') ?? ''
  if (action === '') return queryError(service, 'MissingAction', 'Missing Action', requestId)
  const expected = SERVICES[service].version
  const version = params.get('Version') ?? expected
  if (version !== expected || !ACTIONS[service].has(action)) {
    const message = `Could not find operation ${action} for version ${version}`
    return queryError(service, 'InvalidAction', message, requestId)
  }
  return undefined
}

async function handle(
  service: QueryService,
  ops: IamOperations,
  caller: Caller,
  params: URLSearchParams,
  requestId: string,
  onInternalError: InternalErrorHook | undefined,
): Promise<QueryResult> {
  const action = params.get('Action') ?? ''
  try {
    const refused = checkQueryAction(service, params, requestId)
    if (refused !== undefined) return refused
    const run = ACTIONS[service].get(action)
    if (run === undefined) throw new Error(`no handler for ${action}`)
    const result = await run(ops, caller, new QueryParams(params))
    return { status: 200, body: queryResponseXml(service, action, result, requestId) }
  } catch (err) {
    if (err instanceof IamError) {
      return {
        status: err.status,
        body: queryErrorXml(service, err.code, err.message, requestId),
      }
    }
    try {
      onInternalError?.(err, action)
    } catch {
      // A failing hook must not change the answer.
    }
    return queryError(service, 'ServiceFailure', SERVICE_FAILURE_MESSAGE, requestId)
  }
}

/**
 * IAM query API (Version 2010-05-08, namespace https://iam.amazonaws.com/doc/2010-05-08/).
 * Never throws: failures are answered as AWS's `ErrorResponse`, unexpected ones as
 * ServiceFailure (500), reported to `onInternalError` and never described to the client.
 */
export async function handleIamQuery(
  ops: IamOperations,
  caller: Caller,
  params: URLSearchParams,
  requestId: string,
  onInternalError?: InternalErrorHook,
): Promise<QueryResult> {
  return handle('iam', ops, caller, params, requestId, onInternalError)
}

/**
 * STS query API (Version 2011-06-15, namespace https://sts.amazonaws.com/doc/2011-06-15/):
 * AssumeRole and GetCallerIdentity. Never throws, as {@link handleIamQuery}.
 */
export async function handleStsQuery(
  ops: IamOperations,
  caller: Caller,
  params: URLSearchParams,
  requestId: string,
  onInternalError?: InternalErrorHook,
): Promise<QueryResult> {
  return handle('sts', ops, caller, params, requestId, onInternalError)
}

/** The actions each query API offers, for routing and documentation. */
export const QUERY_ACTIONS: Readonly<Record<QueryService, readonly string[]>> = {
  iam: [...IAM_ACTIONS.keys()],
  sts: [...STS_ACTIONS.keys()],
}
