/**
 * Bucket lifecycle configurations (Get/Put/DeleteBucketLifecycleConfiguration): the XML AWS
 * takes and gives, checked the way AWS checks it, and the plain shape stored in the bucket
 * record's `settings.lifecycle`, which the nodes' lifecycle workers read
 * (`packages/node/src/lifecycle/rules.ts` keeps the same shape; change both together).
 *
 * Design notes
 * - Parsing is strict in the way of xml.ts: not well-formed, a DOCTYPE, an unknown or repeated
 *   element, or a value outside the schema's type is MalformedXML; values the schema allows but
 *   the rules forbid (Days 0, a Date that is not midnight UTC, Days and Date together, duplicate
 *   IDs, more than 1000 rules, …) are InvalidArgument, and rule combinations AWS refuses
 *   (no action, tags with AbortIncompleteMultipartUpload) InvalidRequest. Entities are never
 *   expanded: only the five predefined ones and character references are decoded, here.
 * - The stored shape keeps what the client sent (legacy top-level Prefix or Filter, a single
 *   predicate or And), so GET answers the configuration as it was put, as AWS does; a rule
 *   sent without an ID gets a generated one.
 * - Transitions have no meaning in a store with one storage class: they are refused with
 *   NotImplemented rather than silently ignored.
 */
import { randomUUID } from 'node:crypto'
import { XMLParser, XMLValidator } from 'fast-xml-parser'
import { BodyDigests, type ChecksumExpectation, parseChecksumHeaders } from './checksums.ts'
import { S3Error } from './errors.ts'
import { S3_XMLNS, xmlEscape } from './xml.ts'

/** Most rules one configuration may hold, as in AWS. */
export const MAX_LIFECYCLE_RULES = 1000

/** Longest rule ID, in characters. */
export const MAX_RULE_ID_CHARS = 255

/** Largest NewerNoncurrentVersions AWS accepts. */
export const MAX_NEWER_NONCURRENT_VERSIONS = 100

/** Largest PutBucketLifecycleConfiguration body read (1000 rules with long prefixes and tags). */
export const LIFECYCLE_MAX_BODY_BYTES = 2 * 1024 * 1024

export interface LifecycleTag {
  key: string
  value: string
}

/**
 * A rule's Filter. Empty: every object. One predicate (and `and` unset): sent as that element;
 * `and`: sent inside And. Sizes are in bytes and strict (greater than, less than).
 */
export interface LifecycleFilter {
  prefix?: string
  tags?: LifecycleTag[]
  objectSizeGreaterThan?: number
  objectSizeLessThan?: number
  and?: boolean
}

export interface LifecycleRule {
  id: string
  status: 'Enabled' | 'Disabled'
  /** The deprecated top-level Prefix, for a rule sent without a Filter. */
  prefix?: string
  filter?: LifecycleFilter
  expiration?: {
    days?: number
    /** Midnight UTC, ISO 8601 with milliseconds. */
    date?: string
    expiredObjectDeleteMarker?: boolean
  }
  noncurrentVersionExpiration?: { noncurrentDays: number; newerNoncurrentVersions?: number }
  abortIncompleteMultipartUpload?: { daysAfterInitiation: number }
}

/** What `settings.lifecycle` of a bucket record holds. */
export interface LifecycleConfiguration {
  rules: LifecycleRule[]
}

// ---------------------------------------------------------------------------------------------
// The integrity header AWS requires on PUT

/**
 * PutBucketLifecycleConfiguration needs Content-MD5 or a flexible checksum (x-amz-checksum-* or
 * a trailer announced with x-amz-sdk-checksum-algorithm), as in AWS; without one: InvalidRequest.
 * Returns what the headers promise, for {@link checkBodyDigests}.
 */
export function requireIntegrityHeader(headers: Record<string, string>): ChecksumExpectation {
  const exp = parseChecksumHeaders(headers)
  if (exp.contentMd5 === undefined && exp.algorithm === undefined) {
    throw new S3Error('InvalidRequest', 'Missing required header for this request: Content-MD5')
  }
  return exp
}

/** Checks a whole (non-streamed) body against the header's checksum and Content-MD5. */
export function checkBodyDigests(exp: ChecksumExpectation, body: Uint8Array): void {
  const digests = new BodyDigests(exp)
  digests.update(body)
  digests.finish()
}

// ---------------------------------------------------------------------------------------------
// Parsing

interface XmlElement {
  readonly name: string
  readonly children: readonly XmlElement[]
  readonly text: string
}

const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: true,
  removeNSPrefix: true,
  trimValues: false,
  parseTagValue: false,
  processEntities: false,
  htmlEntities: false,
  cdataPropName: '#cdata',
  ignoreDeclaration: true,
  ignorePiTags: true,
})

function malformed(cause?: unknown): S3Error {
  return new S3Error('MalformedXML', undefined, {}, { cause })
}

function invalidArgument(message: string): S3Error {
  return new S3Error('InvalidArgument', message)
}

const ENTITIES: Readonly<Record<string, string>> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
}
const REFERENCE = /&(?:([a-zA-Z]+)|#([0-9]{1,8})|#x([0-9a-fA-F]{1,8}));/g

function decodeReferences(raw: string): string {
  if (!raw.includes('&')) return raw
  if (raw.replace(REFERENCE, '').includes('&')) throw malformed()
  return raw.replace(REFERENCE, (_m, name?: string, dec?: string, hex?: string) => {
    if (name !== undefined) {
      const v = ENTITIES[name]
      if (v === undefined) throw malformed()
      return v
    }
    const cp = Number.parseInt(dec ?? hex ?? '', dec !== undefined ? 10 : 16)
    if (cp > 0x10ffff || (cp < 0x20 && cp !== 0x09 && cp !== 0x0a && cp !== 0x0d)) throw malformed()
    return String.fromCodePoint(cp)
  })
}

function toElement(name: string, nodes: unknown): XmlElement {
  if (!Array.isArray(nodes)) throw malformed()
  const children: XmlElement[] = []
  let text = ''
  for (const node of nodes as Record<string, unknown>[]) {
    const child = Object.keys(node).find((k) => k !== ':@')
    if (child === undefined) continue
    const content = node[child]
    if (child === '#text') text += decodeReferences(String(content))
    else if (child === '#cdata') {
      for (const part of content as Record<string, unknown>[]) {
        if (typeof part['#text'] === 'string') text += part['#text']
      }
    } else children.push(toElement(child, content))
  }
  return { name, children, text }
}

function parseRoot(body: Uint8Array | string, root: string): XmlElement {
  let text: string
  try {
    text = typeof body === 'string' ? body : new TextDecoder('utf-8', { fatal: true }).decode(body)
  } catch (err) {
    throw malformed(err)
  }
  if (/<!DOCTYPE/i.test(text)) throw malformed()
  text = text.replace(/\r\n?/g, '\n')
  if (XMLValidator.validate(text) !== true) throw malformed()
  let nodes: unknown
  try {
    nodes = parser.parse(text)
  } catch (err) {
    throw malformed(err)
  }
  const roots: XmlElement[] = []
  for (const node of nodes as Record<string, unknown>[]) {
    const name = Object.keys(node).find((k) => k !== ':@')
    if (name === undefined) continue
    if (name === '#text') {
      if (String(node[name]).trim() !== '') throw malformed()
    } else if (name === '#cdata') throw malformed()
    else roots.push(toElement(name, node[name]))
  }
  const [only] = roots
  if (only === undefined || roots.length !== 1 || only.name !== root) throw malformed()
  return only
}

type Occurs = 'one' | 'optional' | 'many'

/** Child elements by name, after checking them against `schema`. */
function childrenOf(
  el: XmlElement,
  schema: Readonly<Record<string, Occurs>>,
): Map<string, XmlElement[]> {
  if (el.text.trim() !== '') throw malformed()
  const groups = new Map<string, XmlElement[]>()
  for (const child of el.children) {
    const occurs = Object.hasOwn(schema, child.name) ? schema[child.name] : undefined
    if (occurs === undefined) throw malformed()
    const group = groups.get(child.name)
    if (group === undefined) groups.set(child.name, [child])
    else if (occurs === 'many') group.push(child)
    else throw malformed()
  }
  for (const [name, occurs] of Object.entries(schema)) {
    if (occurs === 'one' && !groups.has(name)) throw malformed()
  }
  return groups
}

function textOf(el: XmlElement | undefined): string | undefined {
  if (el === undefined) return undefined
  if (el.children.length > 0) throw malformed()
  return el.text
}

// xs:int: optional sign, digits, whitespace collapsed.
function parseInteger(value: string): number {
  const v = value.trim()
  if (!/^[+-]?[0-9]{1,15}$/.test(v)) throw malformed()
  return Number(v)
}

function parseBool(value: string): boolean {
  const v = value.trim()
  if (v === 'true' || v === '1') return true
  if (v === 'false' || v === '0') return false
  throw malformed()
}

function parseTag(el: XmlElement): LifecycleTag {
  const f = childrenOf(el, { Key: 'one', Value: 'one' })
  return { key: textOf(f.get('Key')?.[0])!, value: textOf(f.get('Value')?.[0])! }
}

function parseSize(el: XmlElement | undefined): number | undefined {
  const text = textOf(el)
  if (text === undefined) return undefined
  const n = parseInteger(text)
  if (n < 0) throw invalidArgument('Object size filters must be non-negative integers')
  return n
}

const PREDICATES = ['Prefix', 'Tag', 'ObjectSizeGreaterThan', 'ObjectSizeLessThan'] as const

function parseFilter(el: XmlElement): LifecycleFilter {
  const g = childrenOf(el, {
    Prefix: 'optional',
    Tag: 'optional',
    ObjectSizeGreaterThan: 'optional',
    ObjectSizeLessThan: 'optional',
    And: 'optional',
  })
  // A Filter holds one predicate (or none: every object).
  if (g.size > 1) throw malformed()
  const and = g.get('And')?.[0]
  let filter: LifecycleFilter
  if (and !== undefined) {
    const a = childrenOf(and, {
      Prefix: 'optional',
      Tag: 'many',
      ObjectSizeGreaterThan: 'optional',
      ObjectSizeLessThan: 'optional',
    })
    const count = PREDICATES.reduce((n, p) => n + (a.get(p)?.length ?? 0), 0)
    if (count < 2) throw malformed()
    filter = predicates(a)
    filter.and = true
  } else filter = predicates(g)
  const tags = filter.tags ?? []
  if (new Set(tags.map((t) => t.key)).size !== tags.length) {
    throw invalidArgument('Duplicate Tag Keys are not allowed.')
  }
  const gt = filter.objectSizeGreaterThan
  const lt = filter.objectSizeLessThan
  if (lt !== undefined && lt <= 0) throw invalidArgument('ObjectSizeLessThan must be positive')
  if (gt !== undefined && lt !== undefined && gt >= lt) {
    throw invalidArgument('ObjectSizeGreaterThan must be less than ObjectSizeLessThan')
  }
  return filter
}

function predicates(g: Map<string, XmlElement[]>): LifecycleFilter {
  const f: LifecycleFilter = {}
  const prefix = textOf(g.get('Prefix')?.[0])
  if (prefix !== undefined) f.prefix = prefix
  const tags = (g.get('Tag') ?? []).map(parseTag)
  if (tags.length > 0) f.tags = tags
  const gt = parseSize(g.get('ObjectSizeGreaterThan')?.[0])
  if (gt !== undefined) f.objectSizeGreaterThan = gt
  const lt = parseSize(g.get('ObjectSizeLessThan')?.[0])
  if (lt !== undefined) f.objectSizeLessThan = lt
  return f
}

const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$/

function parseDate(value: string): string {
  const v = value.trim()
  const m = ISO_DATE.exec(v)
  const t = m ? Date.parse(v) : Number.NaN
  if (Number.isNaN(t)) throw malformed()
  if (t % 86_400_000 !== 0) throw invalidArgument("'Date' must be at midnight GMT")
  return new Date(t).toISOString()
}

function positive(value: string, what: string, action: string): number {
  const n = parseInteger(value)
  if (n <= 0) throw invalidArgument(`'${what}' for ${action} action must be a positive integer`)
  return n
}

function parseRule(el: XmlElement): LifecycleRule {
  const g = childrenOf(el, {
    ID: 'optional',
    Prefix: 'optional',
    Filter: 'optional',
    Status: 'one',
    Expiration: 'optional',
    Transition: 'many',
    NoncurrentVersionTransition: 'many',
    NoncurrentVersionExpiration: 'optional',
    AbortIncompleteMultipartUpload: 'optional',
  })
  const status = textOf(g.get('Status')?.[0])
  if (status !== 'Enabled' && status !== 'Disabled') throw malformed()
  const rawId = textOf(g.get('ID')?.[0])
  if (rawId !== undefined && [...rawId].length > MAX_RULE_ID_CHARS) {
    throw invalidArgument(`ID length should not exceed allowed limit of ${MAX_RULE_ID_CHARS}`)
  }
  // AWS names a rule sent without an ID itself.
  const id = rawId === undefined || rawId === '' ? newRuleId() : rawId
  const rule: LifecycleRule = { id, status }
  const prefix = textOf(g.get('Prefix')?.[0])
  const filterEl = g.get('Filter')?.[0]
  // A rule scopes its objects by exactly one of Filter and the deprecated Prefix.
  if ((prefix === undefined) === (filterEl === undefined)) throw malformed()
  if (prefix !== undefined) rule.prefix = prefix
  if (filterEl !== undefined) rule.filter = parseFilter(filterEl)

  if (g.has('Transition') || g.has('NoncurrentVersionTransition')) {
    throw new S3Error(
      'NotImplemented',
      'Tessera has a single storage class, so lifecycle transitions are not supported; remove Transition and NoncurrentVersionTransition.',
    )
  }
  const expEl = g.get('Expiration')?.[0]
  if (expEl !== undefined) {
    const e = childrenOf(expEl, {
      Days: 'optional',
      Date: 'optional',
      ExpiredObjectDeleteMarker: 'optional',
    })
    if (e.size === 0) throw malformed()
    const days = textOf(e.get('Days')?.[0])
    const date = textOf(e.get('Date')?.[0])
    const marker = textOf(e.get('ExpiredObjectDeleteMarker')?.[0])
    if (days !== undefined && date !== undefined) {
      throw invalidArgument(
        'Only one of Days or Date can be specified in a Lifecycle Expiration Policy',
      )
    }
    if (marker !== undefined && (days !== undefined || date !== undefined)) {
      throw invalidArgument(
        'ExpiredObjectDeleteMarker cannot be specified with Days or Date in a Lifecycle Expiration Policy',
      )
    }
    const exp: NonNullable<LifecycleRule['expiration']> = {}
    if (days !== undefined) exp.days = positive(days, 'Days', 'Expiration')
    if (date !== undefined) exp.date = parseDate(date)
    if (marker !== undefined) exp.expiredObjectDeleteMarker = parseBool(marker)
    rule.expiration = exp
  }
  const ncEl = g.get('NoncurrentVersionExpiration')?.[0]
  if (ncEl !== undefined) {
    const n = childrenOf(ncEl, { NoncurrentDays: 'one', NewerNoncurrentVersions: 'optional' })
    const nc: NonNullable<LifecycleRule['noncurrentVersionExpiration']> = {
      noncurrentDays: positive(
        textOf(n.get('NoncurrentDays')?.[0])!,
        'NoncurrentDays',
        'NoncurrentVersionExpiration',
      ),
    }
    const newer = textOf(n.get('NewerNoncurrentVersions')?.[0])
    if (newer !== undefined) {
      const v = positive(newer, 'NewerNoncurrentVersions', 'NoncurrentVersionExpiration')
      if (v > MAX_NEWER_NONCURRENT_VERSIONS) {
        throw invalidArgument(
          `'NewerNoncurrentVersions' must not exceed ${MAX_NEWER_NONCURRENT_VERSIONS}`,
        )
      }
      nc.newerNoncurrentVersions = v
    }
    rule.noncurrentVersionExpiration = nc
  }
  const abortEl = g.get('AbortIncompleteMultipartUpload')?.[0]
  if (abortEl !== undefined) {
    const a = childrenOf(abortEl, { DaysAfterInitiation: 'one' })
    rule.abortIncompleteMultipartUpload = {
      daysAfterInitiation: positive(
        textOf(a.get('DaysAfterInitiation')?.[0])!,
        'DaysAfterInitiation',
        'AbortIncompleteMultipartUpload',
      ),
    }
  }

  if (
    rule.expiration === undefined &&
    rule.noncurrentVersionExpiration === undefined &&
    rule.abortIncompleteMultipartUpload === undefined
  ) {
    throw new S3Error('InvalidRequest', 'At least one action needs to be specified in a rule')
  }
  const f = rule.filter
  if (f?.tags !== undefined && rule.abortIncompleteMultipartUpload !== undefined) {
    throw new S3Error(
      'InvalidRequest',
      'AbortIncompleteMultipartUpload cannot be specified with Tags.',
    )
  }
  if (
    f !== undefined &&
    (f.objectSizeGreaterThan !== undefined || f.objectSizeLessThan !== undefined) &&
    rule.abortIncompleteMultipartUpload !== undefined
  ) {
    throw new S3Error(
      'InvalidRequest',
      'AbortIncompleteMultipartUpload cannot be specified with an object size filter.',
    )
  }
  if (f?.tags !== undefined && rule.expiration?.expiredObjectDeleteMarker !== undefined) {
    throw new S3Error('InvalidRequest', 'ExpiredObjectDeleteMarker cannot be specified with Tags.')
  }
  return rule
}

/** An ID in the style AWS gives rules sent without one. */
function newRuleId(): string {
  return Buffer.from(randomUUID()).toString('base64')
}

/**
 * Parses PutBucketLifecycleConfiguration's `LifecycleConfiguration` (1 to 1000 rules) into the
 * stored shape; throws the S3Error AWS answers (see the design notes).
 */
export function parseLifecycleConfiguration(body: Uint8Array | string): LifecycleConfiguration {
  if (body.length === 0) throw new S3Error('MissingRequestBodyError')
  const root = parseRoot(body, 'LifecycleConfiguration')
  const ruleEls = childrenOf(root, { Rule: 'many' }).get('Rule') ?? []
  if (ruleEls.length === 0) throw malformed()
  const rules = ruleEls.map(parseRule)
  if (rules.length > MAX_LIFECYCLE_RULES) {
    throw invalidArgument(
      `Lifecycle configuration allows a maximum of ${MAX_LIFECYCLE_RULES} rules`,
    )
  }
  const ids = new Set<string>()
  for (const r of rules) {
    if (ids.has(r.id)) {
      throw invalidArgument('Rule ID must be unique. Found same ID for more than one rule')
    }
    ids.add(r.id)
  }
  return { rules }
}

// ---------------------------------------------------------------------------------------------
// Rendering

function leaf(name: string, value: string | number | boolean): string {
  return `<${name}>${xmlEscape(String(value))}</${name}>`
}

function tagXml(t: LifecycleTag): string {
  return `<Tag>${leaf('Key', t.key)}${leaf('Value', t.value)}</Tag>`
}

function filterXml(f: LifecycleFilter): string {
  const parts = [
    f.prefix !== undefined ? leaf('Prefix', f.prefix) : '',
    ...(f.tags ?? []).map(tagXml),
    f.objectSizeGreaterThan !== undefined
      ? leaf('ObjectSizeGreaterThan', f.objectSizeGreaterThan)
      : '',
    f.objectSizeLessThan !== undefined ? leaf('ObjectSizeLessThan', f.objectSizeLessThan) : '',
  ].join('')
  return `<Filter>${f.and ? `<And>${parts}</And>` : parts}</Filter>`
}

function ruleXml(r: LifecycleRule): string {
  let out = leaf('ID', r.id)
  if (r.prefix !== undefined) out += leaf('Prefix', r.prefix)
  if (r.filter !== undefined) out += filterXml(r.filter)
  out += leaf('Status', r.status)
  const e = r.expiration
  if (e !== undefined) {
    out += '<Expiration>'
    if (e.date !== undefined) out += leaf('Date', e.date)
    if (e.days !== undefined) out += leaf('Days', e.days)
    if (e.expiredObjectDeleteMarker !== undefined)
      out += leaf('ExpiredObjectDeleteMarker', e.expiredObjectDeleteMarker)
    out += '</Expiration>'
  }
  const nc = r.noncurrentVersionExpiration
  if (nc !== undefined) {
    out += `<NoncurrentVersionExpiration>${leaf('NoncurrentDays', nc.noncurrentDays)}`
    if (nc.newerNoncurrentVersions !== undefined)
      out += leaf('NewerNoncurrentVersions', nc.newerNoncurrentVersions)
    out += '</NoncurrentVersionExpiration>'
  }
  const a = r.abortIncompleteMultipartUpload
  if (a !== undefined) {
    out += `<AbortIncompleteMultipartUpload>${leaf('DaysAfterInitiation', a.daysAfterInitiation)}</AbortIncompleteMultipartUpload>`
  }
  return `<Rule>${out}</Rule>`
}

/** GetBucketLifecycleConfiguration's `LifecycleConfiguration`, in S3's namespace. */
export function lifecycleConfigurationXml(conf: LifecycleConfiguration): string {
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<LifecycleConfiguration xmlns="${S3_XMLNS}">${conf.rules.map(ruleXml).join('')}</LifecycleConfiguration>`
  )
}

/** The configuration stored in a bucket's settings, if any. */
export function lifecycleOf(
  settings: Record<string, unknown> | undefined,
): LifecycleConfiguration | undefined {
  const v = settings?.lifecycle as LifecycleConfiguration | undefined
  return v !== undefined && Array.isArray(v.rules) && v.rules.length > 0 ? v : undefined
}
