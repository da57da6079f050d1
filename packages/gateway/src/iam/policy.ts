/**
 * IAM policy documents (identity, bucket and session policies): parsing with AWS-like
 * validation, and evaluation with AWS's semantics for one policy. Combining several policies
 * (identity ∩ session, bucket policy ∪ identity, explicit deny everywhere) is the caller's
 * job: this module only answers "what does this one document say about this request".
 *
 * Evaluation never throws: a document that passed {@link parsePolicy} is well formed, and
 * whatever the request context holds can at worst make a statement not apply.
 */
import { BlockList, isIP } from 'node:net'

/** Which kind of document is parsed: the kinds differ in what Principal and Resource may say. */
export type PolicyKind = 'identity' | 'bucket' | 'session'

/** How {@link parsePolicy} validates a document. */
export interface ParseOptions {
  kind: PolicyKind
  /** Largest minified size in bytes: Buffer.byteLength(JSON.stringify(JSON.parse(text))). */
  maxBytes: number
  /**
   * For bucket policies: the bucket the policy is for; every Resource must be this bucket's ARN
   * or an object ARN under it (wildcards allowed), like AWS's "Policy has invalid resource".
   */
  bucket?: string
}

/** A document refused by {@link parsePolicy}; `reason` (also the message) reads like AWS's. */
export class PolicyError extends Error {
  /** Why the document was refused, worded like AWS's MalformedPolicy messages. */
  readonly reason: string
  /** The document is over the size limit (AWS answers a different error code for that). */
  readonly tooLarge: boolean

  /** Builds the error; `tooLarge` marks size refusals. */
  constructor(reason: string, tooLarge = false) {
    super(reason)
    this.name = 'PolicyError'
    this.reason = reason
    this.tooLarge = tooLarge
  }
}

/** A parsed and validated policy document. */
export interface Policy {
  version: '2008-10-17' | '2012-10-17'
  id?: string
  statements: Statement[]
  /** minified JSON */
  text: string
  /** Size of `text` in UTF-8 bytes. */
  bytes: number
}

/** One statement, with every string-or-array field normalized to a non-empty array. */
export interface Statement {
  sid?: string
  effect: 'Allow' | 'Deny'
  principal?: PrincipalSpec
  notPrincipal?: PrincipalSpec
  action?: string[]
  notAction?: string[]
  resource?: string[]
  notResource?: string[]
  /** Every condition must hold (AND); empty when the statement has none. */
  conditions: Condition[]
}

/** A Principal or NotPrincipal element: everyone, or lists of identities by type. */
export type PrincipalSpec =
  | '*'
  | { AWS?: string[]; Service?: string[]; CanonicalUser?: string[]; Federated?: string[] }

/** One condition key under one operator, e.g. `StringLike: { 's3:prefix': ['home/*'] }`. */
export interface Condition {
  /** The operator as written, e.g. 'ForAnyValue:StringLikeIfExists'. */
  operator: string
  /** The operator without set prefix and IfExists suffix, e.g. 'StringLike'. */
  base: string
  ifExists: boolean
  setOp?: 'ForAnyValue' | 'ForAllValues'
  /** The condition key as written (lookups are case-insensitive). */
  key: string
  /** The values, as strings (numbers and booleans converted); any of them may match (OR). */
  values: string[]
}

/** What is asked of a policy. */
export interface EvalRequest {
  /** e.g. 's3:GetObject', 'iam:CreateUser' */
  action: string
  /**
   * ARN, e.g. 'arn:aws:s3:::bucket/key', 'arn:aws:s3:::bucket',
   * 'arn:aws:iam::123456789012:user/alice', or '*'
   */
  resource: string
  /**
   * Who is asking, for Principal/NotPrincipal matching (bucket policies).
   * Undefined = anonymous.
   */
  principal?: {
    /** e.g. user ARN, 'arn:aws:iam::<acct>:root', the 12-digit account id */
    arns: string[]
    canonicalId?: string
  }
  /**
   * Condition context keys (case-insensitive lookup); a value may be multi-valued; undefined,
   * missing or an empty array = key absent.
   */
  context: Record<string, string | string[] | undefined>
}

/** What one policy says about a request; NoMatch leaves the decision to other policies. */
export type Verdict = 'Allow' | 'Deny' | 'NoMatch'

/** A verdict and the statement that decided it. */
export interface Decision {
  verdict: Verdict
  /** the deciding statement (Sid or 'Statement[i]'), for logs */
  statement?: string
}

// ---------------------------------------------------------------------------------------------
// Wildcard matching
// ---------------------------------------------------------------------------------------------

/** Token for '*' (any run of characters) in a compiled pattern. */
const STAR = 0
/** Token for '?' (exactly one character) in a compiled pattern. */
const ANY = 1
/** A literal character (one code point), or a wildcard. */
type Tok = string | typeof STAR | typeof ANY

/**
 * A compiled pattern: the literal-and-'?' runs between the stars, so `a*b?*c` is
 * [[a], [b, ?], [c]]. One run means the pattern has no star at all.
 */
type Glob = Tok[][]

function globOf(toks: Tok[]): Glob {
  const segs: Glob = [[]]
  for (const t of toks) {
    if (t === STAR) segs.push([])
    else segs[segs.length - 1]!.push(t)
  }
  return segs
}

/** Tokens of pattern text, where '*' and '?' are wildcards. */
function patternToks(text: string, ci: boolean): Tok[] {
  return Array.from(ci ? text.toLowerCase() : text, (c) => (c === '*' ? STAR : c === '?' ? ANY : c))
}

/** Tokens of text that must match literally (values of policy variables). */
function literalToks(text: string, ci: boolean): Tok[] {
  return Array.from(ci ? text.toLowerCase() : text)
}

function runAt(run: Tok[], v: string[], at: number): boolean {
  for (let k = 0; k < run.length; k++) {
    const t = run[k]
    if (t !== ANY && t !== v[at + k]) return false
  }
  return true
}

/**
 * Matches a compiled pattern against a value split into code points. Each run between stars is
 * placed at its leftmost possible position: a later run can only gain from an earlier run
 * ending sooner, so leftmost placement never needs backtracking. That bounds the work by
 * |pattern|·|value| whatever the pattern, where a backtracking matcher (or a regex built from
 * the pattern) can take exponential time on patterns like 'a*a*a*a*b'.
 */
function matchGlob(glob: Glob, v: string[]): boolean {
  const n = v.length
  const first = glob[0]!
  if (glob.length === 1) return first.length === n && runAt(first, v, 0)
  const last = glob[glob.length - 1]!
  if (first.length + last.length > n) return false
  if (!runAt(first, v, 0) || !runAt(last, v, n - last.length)) return false
  let pos = first.length
  const end = n - last.length
  for (let i = 1; i < glob.length - 1; i++) {
    const run = glob[i]!
    let at = pos
    while (at + run.length <= end && !runAt(run, v, at)) at++
    if (at + run.length > end) return false
    pos = at + run.length
  }
  return true
}

/**
 * Glob matching of `value` against `pattern`, where '*' matches any run of characters
 * (including none) and '?' exactly one character (code point); every other character is
 * literal, so nothing in the pattern is ever interpreted as a regular expression. Runs in
 * O(|pattern|·|value|) at worst, with no backtracking.
 */
export function matchWildcard(pattern: string, value: string, caseInsensitive: boolean): boolean {
  const v = Array.from(caseInsensitive ? value.toLowerCase() : value)
  return matchGlob(globOf(patternToks(pattern, caseInsensitive)), v)
}

// ---------------------------------------------------------------------------------------------
// Policy variables
// ---------------------------------------------------------------------------------------------

/** Condition context with lower-cased keys; absent keys are not in the map. */
type Ctx = Map<string, string[]>

function contextOf(context: EvalRequest['context']): Ctx {
  const ctx: Ctx = new Map()
  for (const [key, value] of Object.entries(context)) {
    if (value === undefined) continue
    const values = typeof value === 'string' ? [value] : value
    // An empty list is "no value": ForAllValues is then vacuously true, everything else false.
    if (values.length === 0) continue
    const k = key.toLowerCase()
    // Two spellings of one key: the first one given wins, so the outcome does not depend on
    // anything but the request.
    if (!ctx.has(k)) ctx.set(k, values)
  }
  return ctx
}

/** A piece of a template: policy text (wildcards live) or a substituted value (literal). */
interface Piece {
  text: string
  literal: boolean
}

/** `${key}` or `${key, 'default'}`; keys have no spaces, commas or quotes. */
const VARIABLE = /^\s*([^\s,'{}]+)\s*(?:,\s*'([^']*)'\s*)?$/

/**
 * Splits text at its policy variables and substitutes them from the context. Undefined when
 * a variable has no value and no default, or several values (which of them would be meant is
 * unknowable): the caller then treats the whole Resource or condition value as matching
 * nothing, rather than matching the text with the variable left in.
 */
function expand(text: string, ctx: Ctx, variables: boolean): Piece[] | undefined {
  if (!variables || !text.includes('${')) return [{ text, literal: false }]
  const pieces: Piece[] = []
  let from = 0
  let i = text.indexOf('${')
  while (i >= 0) {
    const close = text.indexOf('}', i + 2)
    if (close < 0) break
    const inner = text.slice(i + 2, close)
    let value: string | undefined
    if (inner === '*' || inner === '?' || inner === '$') {
      // The escapes exist so that a literal '*', '?' or '$' can be written where it would be
      // special; they are literal characters, never wildcards.
      value = inner
    } else {
      const m = VARIABLE.exec(inner)
      if (!m) {
        // Not variable syntax: plain text, like with version 2008-10-17.
        i = text.indexOf('${', i + 2)
        continue
      }
      const found = ctx.get(m[1]!.toLowerCase())
      if (found === undefined) value = m[2]
      else if (found.length === 1) value = found[0]
      if (value === undefined) return undefined
    }
    if (i > from) pieces.push({ text: text.slice(from, i), literal: false })
    pieces.push({ text: value, literal: true })
    from = close + 1
    i = text.indexOf('${', from)
  }
  if (from < text.length) pieces.push({ text: text.slice(from), literal: false })
  return pieces
}

function expandString(text: string, ctx: Ctx, variables: boolean): string | undefined {
  return expand(text, ctx, variables)
    ?.map((p) => p.text)
    .join('')
}

/** Tokens of a pattern with variables substituted: wildcards in values stay literal. */
function expandToks(text: string, ctx: Ctx, variables: boolean, ci: boolean): Tok[] | undefined {
  const pieces = expand(text, ctx, variables)
  if (!pieces) return undefined
  // concat, not push(...spread): a long context value must not overflow the argument limit.
  return pieces.reduce<Tok[]>(
    (toks, p) => toks.concat(p.literal ? literalToks(p.text, ci) : patternToks(p.text, ci)),
    [],
  )
}

function likeMatch(
  pattern: string,
  value: string,
  ctx: Ctx,
  variables: boolean,
  ci: boolean,
): boolean {
  const toks = expandToks(pattern, ctx, variables, ci)
  return toks !== undefined && matchGlob(globOf(toks), Array.from(ci ? value.toLowerCase() : value))
}

/**
 * ArnEquals/ArnLike: each of the first five colon-separated parts and the resource part are
 * matched separately, as AWS documents, so a wildcard in the account part cannot swallow a
 * colon. A pattern without any colon (such as '*') is matched against the whole value; any
 * other pattern or value that is not a six-part ARN matches nothing.
 */
function arnMatch(pattern: string, value: string, ctx: Ctx, variables: boolean): boolean {
  const toks = expandToks(pattern, ctx, variables, false)
  if (!toks) return false
  const parts: Tok[][] = [[]]
  for (const t of toks) {
    if (t === ':' && parts.length < 6) parts.push([])
    else parts[parts.length - 1]!.push(t)
  }
  if (parts.length === 1) return matchGlob(globOf(toks), Array.from(value))
  const vparts = value.split(':')
  if (parts.length < 6 || vparts.length < 6) return false
  const vs = [...vparts.slice(0, 5), vparts.slice(5).join(':')]
  return parts.every((p, i) => matchGlob(globOf(p), Array.from(vs[i]!)))
}

// ---------------------------------------------------------------------------------------------
// Value parsing shared by validation and evaluation
// ---------------------------------------------------------------------------------------------

const NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/

function parseNumber(s: string): number | undefined {
  return NUMBER.test(s) ? Number(s) : undefined
}

/** YYYY-MM-DD, optionally Thh:mm, :ss, .fraction and a zone (Z, ±hh, ±hhmm or ±hh:mm). */
const ISO_DATE = new RegExp(
  String.raw`^(\d{4})-(\d{2})-(\d{2})` +
    String.raw`(?:[Tt](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?([Zz]|[+-]\d{2}(?::?\d{2})?)?)?$`,
)
const EPOCH = /^\d{1,15}(?:\.\d+)?$/

/**
 * An ISO 8601 date or date-time, or epoch seconds, as epoch milliseconds. Written out rather
 * than left to Date.parse, which reads zone-less date-times as local time and accepts many
 * non-ISO forms; here a missing zone means UTC, as it does for AWS.
 */
function parseDate(s: string): number | undefined {
  if (EPOCH.test(s)) return Number(s) * 1000
  const m = ISO_DATE.exec(s)
  if (!m) return undefined
  const [y, mo, d, h = 0, mi = 0, sec = 0] = m.slice(1, 7).map((x) => (x ? Number(x) : undefined))
  const ms = m[7] ? Number(m[7].slice(0, 3).padEnd(3, '0')) : 0
  if (mo! < 1 || mo! > 12 || d! < 1 || h > 23 || mi > 59 || sec > 59) return undefined
  const leap = y! % 4 === 0 && (y! % 100 !== 0 || y! % 400 === 0)
  if (d! > (mo === 2 ? (leap ? 29 : 28) : [4, 6, 9, 11].includes(mo!) ? 30 : 31)) return undefined
  let offset = 0
  const zone = m[8]
  if (zone && zone !== 'Z' && zone !== 'z') {
    const zh = Number(zone.slice(1, 3))
    const zm = Number(zone.slice(3).replace(':', '') || '0')
    if (zh > 23 || zm > 59) return undefined
    offset = (zone[0] === '-' ? -1 : 1) * (zh * 60 + zm)
  }
  const utc = new Date(0)
  // setUTCFullYear, not Date.UTC, so that years 0-99 are not read as 1900-1999.
  utc.setUTCFullYear(y!, mo! - 1, d!)
  utc.setUTCHours(h, mi, sec, ms)
  return utc.getTime() - offset * 60_000
}

/** An IP address or CIDR block as [address, prefix length, family], or undefined. */
function parseCidr(s: string): [string, number, 'ipv4' | 'ipv6'] | undefined {
  // Zone ids ('fe80::1%eth0') name an interface of one host; they have no place in a policy.
  if (s.includes('%')) return undefined
  const slash = s.indexOf('/')
  const ip = slash < 0 ? s : s.slice(0, slash)
  const v = isIP(ip)
  if (v === 0) return undefined
  const max = v === 4 ? 32 : 128
  if (slash < 0) return [ip, max, v === 4 ? 'ipv4' : 'ipv6']
  const p = s.slice(slash + 1)
  if (!/^\d{1,3}$/.test(p) || Number(p) > max) return undefined
  return [ip, Number(p), v === 4 ? 'ipv4' : 'ipv6']
}

/** The IpAddress values of a condition as one BlockList, built once per condition object. */
const blockLists = new WeakMap<Condition, BlockList>()

function blockListOf(c: Condition): BlockList {
  let list = blockLists.get(c)
  if (list) return list
  list = new BlockList()
  for (const value of c.values) {
    const cidr = parseCidr(value)
    if (!cidr) continue
    const [ip, prefix, family] = cidr
    list.addSubnet(ip, prefix, family)
    // Dual-stack listeners report IPv4 clients as ::ffff:a.b.c.d; the IPv4 block must still
    // hold them. Node's BlockList does this mapping itself; the explicit rule keeps it so.
    if (family === 'ipv4') list.addSubnet(`::ffff:${ip}`, 96 + prefix, 'ipv6')
  }
  blockLists.set(c, list)
  return list
}

function ipMatch(c: Condition, value: string): boolean {
  if (value.includes('%')) return false
  const v = isIP(value)
  if (v === 0) return false
  const list = blockListOf(c)
  if (v === 4) return list.check(value, 'ipv4') || list.check(`::ffff:${value}`, 'ipv6')
  return list.check(value, 'ipv6')
}

// ---------------------------------------------------------------------------------------------
// Parsing and validation
// ---------------------------------------------------------------------------------------------

const TOP_FIELDS = new Set(['Version', 'Id', 'Statement'])
const STATEMENT_FIELDS = new Set([
  'Sid',
  'Effect',
  'Principal',
  'NotPrincipal',
  'Action',
  'NotAction',
  'Resource',
  'NotResource',
  'Condition',
])
const PRINCIPAL_TYPES = ['AWS', 'Service', 'CanonicalUser', 'Federated'] as const
const SERVICES = new Set(['s3', 'iam', 'sts', 'admin'])
const ACTION = /^([a-z0-9-]+):([A-Za-z0-9*?]+)$/

/** Operators whose condition holds when the context value matches none of the values. */
const NEGATED: Record<string, string> = {
  StringNotEquals: 'StringEquals',
  StringNotEqualsIgnoreCase: 'StringEqualsIgnoreCase',
  StringNotLike: 'StringLike',
  NumericNotEquals: 'NumericEquals',
  DateNotEquals: 'DateEquals',
  ArnNotEquals: 'ArnEquals',
  ArnNotLike: 'ArnLike',
  NotIpAddress: 'IpAddress',
}
const OPERATORS = new Set([
  'StringEquals',
  'StringEqualsIgnoreCase',
  'StringLike',
  'NumericEquals',
  'NumericLessThan',
  'NumericLessThanEquals',
  'NumericGreaterThan',
  'NumericGreaterThanEquals',
  'DateEquals',
  'DateLessThan',
  'DateLessThanEquals',
  'DateGreaterThan',
  'DateGreaterThanEquals',
  'Bool',
  'BinaryEquals',
  'IpAddress',
  'ArnEquals',
  'ArnLike',
  'Null',
  ...Object.keys(NEGATED),
])

const CONDITION_KEYS = new Set(
  [
    'aws:SourceIp',
    'aws:SecureTransport',
    'aws:CurrentTime',
    'aws:EpochTime',
    'aws:username',
    'aws:userid',
    'aws:PrincipalType',
    'aws:PrincipalArn',
    'aws:PrincipalAccount',
    'aws:Referer',
    'aws:UserAgent',
    'aws:TokenIssueTime',
    'aws:MultiFactorAuthPresent',
    'aws:SourceVpc',
    'aws:SourceVpce',
    'aws:TagKeys',
    's3:prefix',
    's3:delimiter',
    's3:max-keys',
    's3:versionid',
    's3:x-amz-content-sha256',
    's3:x-amz-acl',
    's3:x-amz-grant-read',
    's3:x-amz-grant-write',
    's3:x-amz-grant-read-acp',
    's3:x-amz-grant-write-acp',
    's3:x-amz-grant-full-control',
    's3:x-amz-object-ownership',
    's3:x-amz-copy-source',
    's3:x-amz-metadata-directive',
    's3:x-amz-server-side-encryption',
    's3:x-amz-storage-class',
    's3:signatureversion',
    's3:authType',
    's3:signatureAge',
    's3:LocationConstraint',
    's3:object-lock-mode',
    's3:object-lock-retain-until-date',
    's3:RequestObjectTagKeys',
  ].map((k) => k.toLowerCase()),
)
/** Keys that name a tag or an IAM/STS key after a fixed prefix; the rest must be non-empty. */
const CONDITION_KEY_PREFIXES = [
  'aws:RequestTag/',
  'aws:ResourceTag/',
  'aws:PrincipalTag/',
  's3:ExistingObjectTag/',
  's3:RequestObjectTag/',
  'iam:',
  'sts:',
].map((k) => k.toLowerCase())

function isConditionKey(key: string): boolean {
  const k = key.toLowerCase()
  if (CONDITION_KEYS.has(k)) return true
  return CONDITION_KEY_PREFIXES.some((p) => k.length > p.length && k.startsWith(p))
}

function fail(reason: string): never {
  throw new PolicyError(reason)
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** A string or a non-empty array of non-empty strings, as an array; undefined if neither. */
function stringList(v: unknown): string[] | undefined {
  const list = typeof v === 'string' ? [v] : v
  if (!Array.isArray(list) || list.length === 0) return undefined
  for (const s of list) if (typeof s !== 'string' || s === '') return undefined
  return list as string[]
}

/**
 * Parses and validates a policy document. Throws {@link PolicyError} on the first problem
 * found, with `tooLarge` set when the size limit is the problem.
 */
export function parsePolicy(text: string, opts: ParseOptions): Policy {
  const { maxBytes } = opts
  // Cheap refusal before JSON.parse: whitespace aside, text this long cannot minify under the
  // limit, and parsing it would let anyone make the gateway chew on megabytes per request.
  const maxText = maxBytes * 16
  if (text.length > maxText) {
    throw new PolicyError(
      `Policy exceeds the maximum allowed document size (${text.length} characters > ${maxText})`,
      true,
    )
  }
  let doc: unknown
  let minified: string
  try {
    doc = JSON.parse(text)
    minified = JSON.stringify(doc)
  } catch {
    // JSON.stringify can only throw here on nesting deep enough to exhaust the stack.
    fail('This policy contains invalid Json')
  }
  // The limit is on the minified form, as AWS counts it, so formatting costs nothing; it is
  // checked before anything else looks into the document.
  const bytes = Buffer.byteLength(minified)
  if (bytes > maxBytes) {
    throw new PolicyError(
      `Policy exceeds the maximum allowed document size (${bytes} > ${maxBytes} bytes)`,
      true,
    )
  }
  if (!isObject(doc)) fail("Policies must be valid JSON and the first byte must be '{'")
  for (const field of Object.keys(doc)) if (!TOP_FIELDS.has(field)) fail(`Unknown field ${field}`)

  const version = doc.Version ?? '2008-10-17'
  if (version !== '2012-10-17' && version !== '2008-10-17') {
    fail('The policy must contain a valid version string')
  }
  if (doc.Id !== undefined && typeof doc.Id !== 'string') fail('Policy Id must be a string')

  if (doc.Statement === undefined) fail('Missing required field Statement')
  const raw = isObject(doc.Statement) ? [doc.Statement] : doc.Statement
  if (!Array.isArray(raw) || raw.length === 0) {
    fail('Statement must be an object or a non-empty array')
  }
  const statements = raw.map((s) => parseStatement(s, opts))
  const sids = new Set<string>()
  for (const s of statements) {
    if (s.sid === undefined || s.sid === '') continue
    // Sids name the deciding statement in logs; two statements with one name would lie there.
    if (sids.has(s.sid)) fail('Statement IDs (SID) in a single policy must be unique.')
    sids.add(s.sid)
  }

  const policy: Policy = { version, statements, text: minified, bytes }
  if (doc.Id !== undefined) policy.id = doc.Id
  return policy
}

function parseStatement(raw: unknown, opts: ParseOptions): Statement {
  if (!isObject(raw)) fail('Statement must be an object')
  for (const field of Object.keys(raw)) {
    if (!STATEMENT_FIELDS.has(field)) fail(`Unknown field ${field}`)
  }
  const st: Statement = { effect: 'Allow', conditions: [] }

  if (raw.Sid !== undefined) {
    if (typeof raw.Sid !== 'string') fail('Statement Sid must be a string')
    st.sid = raw.Sid
  }

  if (raw.Effect === undefined) fail('Missing required field Effect')
  if (raw.Effect !== 'Allow' && raw.Effect !== 'Deny') fail(`Invalid effect: ${String(raw.Effect)}`)
  st.effect = raw.Effect

  const hasP = raw.Principal !== undefined
  const hasNP = raw.NotPrincipal !== undefined
  if (opts.kind !== 'bucket') {
    // Identity and session policies apply to whoever holds them; naming a principal is
    // meaningless there and AWS refuses it.
    if (hasP || hasNP) fail('Policy document should not specify a principal.')
  } else {
    if (hasP && hasNP) fail('Statement must not contain both Principal and NotPrincipal')
    if (!hasP && !hasNP) fail('Missing required field Principal')
    if (hasP) st.principal = parsePrincipal(raw.Principal)
    else st.notPrincipal = parsePrincipal(raw.NotPrincipal)
  }

  if (raw.Action !== undefined && raw.NotAction !== undefined) {
    fail('Statement must not contain both Action and NotAction')
  }
  if (raw.Action === undefined && raw.NotAction === undefined) fail('Missing required field Action')
  const actions = stringList(raw.Action ?? raw.NotAction)
  if (!actions) fail('Policy has invalid action')
  for (const a of actions) checkAction(a, opts.kind)
  if (raw.Action !== undefined) st.action = actions
  else st.notAction = actions

  if (raw.Resource !== undefined && raw.NotResource !== undefined) {
    fail('Statement must not contain both Resource and NotResource')
  }
  if (raw.Resource === undefined && raw.NotResource === undefined) {
    fail('Missing required field Resource')
  }
  const resources = stringList(raw.Resource ?? raw.NotResource)
  if (!resources) fail('Policy has invalid resource')
  for (const r of resources) checkResource(r, opts)
  if (raw.Resource !== undefined) st.resource = resources
  else st.notResource = resources

  if (raw.Condition !== undefined) st.conditions = parseConditions(raw.Condition)
  return st
}

function parsePrincipal(raw: unknown): PrincipalSpec {
  if (raw === '*') return '*'
  if (!isObject(raw)) fail('Invalid principal in policy')
  const keys = Object.keys(raw)
  if (keys.length === 0) fail('Invalid principal in policy')
  const spec: Exclude<PrincipalSpec, '*'> = {}
  for (const key of keys) {
    if (!(PRINCIPAL_TYPES as readonly string[]).includes(key)) fail('Invalid principal in policy')
    const list = stringList(raw[key])
    if (!list) fail('Invalid principal in policy')
    spec[key as (typeof PRINCIPAL_TYPES)[number]] = list
  }
  return spec
}

function checkAction(action: string, kind: PolicyKind): void {
  if (action === '*') return
  const m = ACTION.exec(action)
  if (!m || !SERVICES.has(m[1]!)) fail('Policy has invalid action')
  // A bucket policy governs access to the bucket; IAM or admin actions in it could never
  // apply and are most likely a mistake, so they are refused as AWS refuses them.
  if (kind === 'bucket' && m[1] !== 's3') fail('Policy has invalid action')
}

function checkResource(resource: string, opts: ParseOptions): void {
  if (resource === '*' && opts.kind !== 'bucket') return
  const parts = resource.split(':')
  if (
    parts.length < 6 ||
    parts[0] !== 'arn' ||
    parts[1] !== 'aws' ||
    parts[2] === '' ||
    parts.slice(5).join(':') === ''
  ) {
    fail('Policy has invalid resource')
  }
  if (opts.kind !== 'bucket') return
  const prefix = 'arn:aws:s3:::'
  if (!resource.startsWith(prefix) || resource.length === prefix.length) {
    fail('Policy has invalid resource')
  }
  if (opts.bucket === undefined) return
  const rest = resource.slice(prefix.length)
  const slash = rest.indexOf('/')
  const bucketPart = slash < 0 ? rest : rest.slice(0, slash)
  // A policy stored on one bucket can only ever be consulted for that bucket: a resource for
  // another bucket is a mistake (often a copy-paste) that would silently grant nothing.
  if (bucketPart !== opts.bucket && !matchWildcard(bucketPart, opts.bucket, false)) {
    fail('Policy has invalid resource')
  }
}

function parseOperator(op: string): Omit<Condition, 'key' | 'values'> {
  let rest = op
  let setOp: Condition['setOp']
  for (const p of ['ForAnyValue', 'ForAllValues'] as const) {
    if (rest.startsWith(`${p}:`)) {
      setOp = p
      rest = rest.slice(p.length + 1)
    }
  }
  let ifExists = false
  if (rest.endsWith('IfExists')) {
    ifExists = true
    rest = rest.slice(0, -'IfExists'.length)
  }
  // Null asks whether the key exists at all; "if it exists" makes no sense on it.
  if (!OPERATORS.has(rest) || (ifExists && rest === 'Null')) fail(`Invalid Condition type : ${op}`)
  const parsed: Omit<Condition, 'key' | 'values'> = { operator: op, base: rest, ifExists }
  if (setOp) parsed.setOp = setOp
  return parsed
}

function conditionValues(raw: unknown, op: string): string[] {
  const list = Array.isArray(raw) ? raw : [raw]
  if (list.length === 0) fail(`Invalid Condition value for ${op} : empty list`)
  return list.map((v) => {
    if (typeof v === 'string') return v
    if (typeof v === 'number' && Number.isFinite(v)) return String(v)
    if (typeof v === 'boolean') return v ? 'true' : 'false'
    return fail(`Invalid Condition value for ${op} : ${JSON.stringify(v)}`)
  })
}

function checkConditionValue(base: string, op: string, value: string): void {
  const positive = NEGATED[base] ?? base
  let ok = true
  if (positive.startsWith('Numeric')) ok = parseNumber(value) !== undefined
  else if (positive.startsWith('Date')) ok = parseDate(value) !== undefined
  else if (positive === 'Bool' || positive === 'Null') ok = /^(?:true|false)$/i.test(value)
  else if (positive === 'IpAddress') ok = parseCidr(value) !== undefined
  if (!ok) fail(`Invalid Condition value for ${op} : ${value}`)
}

function parseConditions(raw: unknown): Condition[] {
  if (!isObject(raw)) fail('Condition must be an object')
  const conditions: Condition[] = []
  for (const [op, block] of Object.entries(raw)) {
    const parsed = parseOperator(op)
    // An empty block would be a condition that always holds: certainly not what was meant.
    if (!isObject(block) || Object.keys(block).length === 0) {
      fail(`Condition ${op} must map condition keys to values`)
    }
    for (const [key, rawValues] of Object.entries(block)) {
      if (!isConditionKey(key)) fail('Policy has an invalid condition key')
      const values = conditionValues(rawValues, op)
      for (const v of values) checkConditionValue(parsed.base, op, v)
      conditions.push({ ...parsed, key, values })
    }
  }
  return conditions
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

function principalMatches(spec: PrincipalSpec, who: EvalRequest['principal']): boolean {
  if (spec === '*') return true
  // '*' among the AWS principals means everyone, the anonymous included, as in AWS.
  if (spec.AWS?.includes('*')) return true
  if (!who) return false
  const byArn = (values: string[] | undefined): boolean =>
    values?.some((p) => who.arns.some((a) => matchWildcard(p, a, false))) ?? false
  // Services and federated identities have no credentials of their own here; a caller that
  // acts for one lists its name among the ARNs.
  if (byArn(spec.AWS) || byArn(spec.Service) || byArn(spec.Federated)) return true
  return who.canonicalId !== undefined && (spec.CanonicalUser?.includes(who.canonicalId) ?? false)
}

/** Whether `value` (from the context) matches one policy value under a positive operator. */
function valueMatches(base: string, value: string, want: string, ctx: Ctx, vars: boolean): boolean {
  switch (base) {
    case 'StringEquals':
      return expandString(want, ctx, vars) === value
    case 'StringEqualsIgnoreCase':
      return expandString(want, ctx, vars)?.toLowerCase() === value.toLowerCase()
    case 'StringLike':
      return likeMatch(want, value, ctx, vars, false)
    case 'ArnEquals':
    case 'ArnLike':
      // AWS documents both operators alike: ARN parts compared case-sensitively, wildcards
      // allowed in each part.
      return arnMatch(want, value, ctx, vars)
    case 'Bool':
      return value.toLowerCase() === want.toLowerCase()
    case 'BinaryEquals':
      return value === want
  }
  if (base.startsWith('Numeric'))
    return compare(base.slice(7), parseNumber(value), parseNumber(want))
  if (base.startsWith('Date')) return compare(base.slice(4), parseDate(value), parseDate(want))
  return false
}

function compare(how: string, a: number | undefined, b: number | undefined): boolean {
  // A context value that is not a number or date matches no value; the negated operators,
  // being the negation, then hold for it (it is indeed not equal).
  if (a === undefined || b === undefined) return false
  switch (how) {
    case 'Equals':
      return a === b
    case 'LessThan':
      return a < b
    case 'LessThanEquals':
      return a <= b
    case 'GreaterThan':
      return a > b
    case 'GreaterThanEquals':
      return a >= b
  }
  return false
}

/**
 * One condition against the context. A key absent from the context makes the condition false
 * for every operator, the negated ones included, as AWS does; the exceptions are Null (which
 * asks exactly that), the IfExists forms (true) and ForAllValues (vacuously true).
 */
function conditionHolds(c: Condition, ctx: Ctx, vars: boolean): boolean {
  const present = ctx.get(c.key.toLowerCase())
  if (c.base === 'Null') {
    return c.values.some((v) => (v.toLowerCase() === 'true') === (present === undefined))
  }
  if (present === undefined) return c.ifExists || c.setOp === 'ForAllValues'
  const positive = NEGATED[c.base]
  const base = positive ?? c.base
  const one = (value: string): boolean => {
    const hit =
      base === 'IpAddress'
        ? ipMatch(c, value)
        : c.values.some((want) => valueMatches(base, value, want, ctx, vars))
    return positive ? !hit : hit
  }
  // Without a set operator a multi-valued key behaves like ForAnyValue.
  return c.setOp === 'ForAllValues' ? present.every(one) : present.some(one)
}

function resourceMatches(pattern: string, resource: string, ctx: Ctx, vars: boolean): boolean {
  return likeMatch(pattern, resource, ctx, vars, false)
}

function statementApplies(st: Statement, req: EvalRequest, ctx: Ctx, vars: boolean): boolean {
  const actionHit = (list: string[]): boolean =>
    list.some((p) => matchWildcard(p, req.action, true))
  if (st.action && !actionHit(st.action)) return false
  if (st.notAction && actionHit(st.notAction)) return false

  const resourceHit = (list: string[]): boolean =>
    list.some((p) => resourceMatches(p, req.resource, ctx, vars))
  if (st.resource && !resourceHit(st.resource)) return false
  if (st.notResource && resourceHit(st.notResource)) return false

  if (st.principal && !principalMatches(st.principal, req.principal)) return false
  if (st.notPrincipal && principalMatches(st.notPrincipal, req.principal)) return false

  return st.conditions.every((c) => conditionHolds(c, ctx, vars))
}

/**
 * Evaluates one policy for one request: 'Deny' when a Deny statement applies (an explicit deny
 * wins over any allow in the same policy), else 'Allow' when an Allow statement applies, else
 * 'NoMatch'. The deciding statement is the first applicable one of the winning effect.
 */
export function evaluatePolicy(policy: Policy, req: EvalRequest): Decision {
  const ctx = contextOf(req.context)
  // Version 2008-10-17 predates policy variables: '${aws:username}' is plain text there.
  const vars = policy.version === '2012-10-17'
  let allow: string | undefined
  for (const [i, st] of policy.statements.entries()) {
    if (st.effect === 'Allow' && allow !== undefined) continue
    if (!statementApplies(st, req, ctx, vars)) continue
    const label = st.sid || `Statement[${i}]`
    if (st.effect === 'Deny') return { verdict: 'Deny', statement: label }
    allow = label
  }
  return allow === undefined ? { verdict: 'NoMatch' } : { verdict: 'Allow', statement: allow }
}
