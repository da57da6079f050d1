/**
 * Bucket CORS: Get/Put/DeleteBucketCors, the answer to a browser's preflight (OPTIONS, never
 * authenticated), and the Access-Control-* headers on actual requests, as Amazon S3 gives
 * them. The rules live parsed in the bucket record's settings (`settings.cors`), so a request
 * with an Origin header costs no lookup beyond the (cached) bucket record it needs anyway;
 * requests without Origin never look at them.
 *
 * Matching follows S3: the first rule whose AllowedOrigin matches the Origin (one `*` wildcard
 * per pattern), whose AllowedMethod holds the method (or Access-Control-Request-Method), and
 * whose AllowedHeader patterns cover every header named in Access-Control-Request-Headers.
 */
import type { BucketRecord } from '@tessera/protocol'
import { XMLBuilder, XMLParser, XMLValidator } from 'fast-xml-parser'
import type { Response } from '../http/server.ts'
import { readSmallBody, type S3Context } from './context.ts'
import { S3Error } from './errors.ts'

/** One CORS rule as stored in the bucket record. */
export interface CorsRule {
  id?: string
  allowedOrigins: string[]
  allowedMethods: string[]
  allowedHeaders: string[]
  exposeHeaders: string[]
  maxAgeSeconds?: number
}

/** Methods a CORS rule may allow, as in S3. */
export const CORS_METHODS = ['GET', 'PUT', 'POST', 'DELETE', 'HEAD'] as const

/** Most rules one configuration may hold (S3's limit). */
export const MAX_CORS_RULES = 100

/** Largest CORS configuration document accepted, in bytes (S3's limit). */
export const MAX_CORS_CONFIG_BYTES = 64 * 1024

/** The Vary header S3 sends with every CORS answer. */
const VARY = 'Origin, Access-Control-Request-Headers, Access-Control-Request-Method'

const NOT_ALLOWED =
  "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec."

/** The stored rules of a bucket, or undefined when CORS is not configured. */
export function corsRulesOf(b: BucketRecord | undefined): CorsRule[] | undefined {
  const rules = b?.settings?.cors
  return Array.isArray(rules) && rules.length > 0 ? (rules as CorsRule[]) : undefined
}

const parser = new XMLParser({
  ignoreAttributes: true,
  removeNSPrefix: true,
  parseTagValue: false,
  trimValues: true,
  isArray: (name) =>
    [
      'CORSRule',
      'AllowedOrigin',
      'AllowedMethod',
      'AllowedHeader',
      'ExposeHeader',
      'ID',
      'MaxAgeSeconds',
    ].includes(name),
})

const malformed = () => new S3Error('MalformedXML')

function strings(v: unknown): string[] {
  if (v === undefined) return []
  if (!Array.isArray(v)) throw malformed()
  return v.map((x) => {
    if (typeof x === 'string') return x
    if (x !== null && typeof x === 'object' && Object.keys(x).length === 0) return ''
    throw malformed()
  })
}

/** Parses and checks a CORSConfiguration document; throws S3's errors for a bad one. */
export function parseCorsConfiguration(body: Buffer): CorsRule[] {
  const text = body.toString('utf8')
  if (text.trim() === '' || XMLValidator.validate(text) !== true) throw malformed()
  const doc = parser.parse(text) as Record<string, unknown>
  const root = doc.CORSConfiguration as Record<string, unknown> | undefined
  if (root === undefined || typeof root !== 'object' || root === null) throw malformed()
  const rawRules = root.CORSRule
  if (!Array.isArray(rawRules) || rawRules.length === 0) throw malformed()
  if (rawRules.length > MAX_CORS_RULES) {
    throw new S3Error(
      'InvalidRequest',
      `The number of CORS rules should not exceed allowed limit of ${MAX_CORS_RULES} rules.`,
    )
  }
  const out: CorsRule[] = []
  for (const raw of rawRules) {
    if (raw === null || typeof raw !== 'object') throw malformed()
    const r = raw as Record<string, unknown>
    for (const k of Object.keys(r)) {
      if (
        ![
          'ID',
          'AllowedOrigin',
          'AllowedMethod',
          'AllowedHeader',
          'ExposeHeader',
          'MaxAgeSeconds',
        ].includes(k)
      )
        throw malformed()
    }
    const origins = strings(r.AllowedOrigin)
    const methods = strings(r.AllowedMethod)
    if (origins.length === 0 || methods.length === 0) throw malformed()
    for (const m of methods) {
      if (!(CORS_METHODS as readonly string[]).includes(m)) {
        throw new S3Error(
          'InvalidRequest',
          `Found unsupported HTTP method in CORS config. Unsupported method is ${m}`,
        )
      }
    }
    for (const o of origins) {
      if (o.split('*').length > 2) {
        throw new S3Error(
          'InvalidRequest',
          `AllowedOrigin "${o}" can not have more than one wildcard.`,
        )
      }
    }
    const headers = strings(r.AllowedHeader)
    for (const h of headers) {
      if (h.split('*').length > 2) {
        throw new S3Error(
          'InvalidRequest',
          `AllowedHeader "${h}" can not have more than one wildcard.`,
        )
      }
    }
    const ids = strings(r.ID)
    if (ids.length > 1) throw malformed()
    const ages = strings(r.MaxAgeSeconds)
    if (ages.length > 1 || (ages[0] !== undefined && !/^\d+$/.test(ages[0]))) throw malformed()
    const id = ids[0]
    if (id !== undefined && id.length > 255) {
      throw new S3Error('InvalidArgument', 'ID length should not exceed allowed limit of 255', {
        ArgumentName: 'ID',
        ArgumentValue: id,
      })
    }
    out.push({
      ...(id !== undefined && id !== '' ? { id } : {}),
      allowedOrigins: origins,
      allowedMethods: methods,
      allowedHeaders: headers,
      exposeHeaders: strings(r.ExposeHeader),
      ...(ages[0] !== undefined ? { maxAgeSeconds: Number(ages[0]) } : {}),
    })
  }
  return out
}

const builder = new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: '@_' })

/** The GetBucketCors answer. */
export function corsConfigurationXml(rules: CorsRule[]): string {
  const doc = {
    CORSConfiguration: {
      '@_xmlns': 'http://s3.amazonaws.com/doc/2006-03-01/',
      CORSRule: rules.map((r) => ({
        ...(r.id !== undefined ? { ID: r.id } : {}),
        ...(r.allowedHeaders.length > 0 ? { AllowedHeader: r.allowedHeaders } : {}),
        AllowedMethod: r.allowedMethods,
        AllowedOrigin: r.allowedOrigins,
        ...(r.exposeHeaders.length > 0 ? { ExposeHeader: r.exposeHeaders } : {}),
        ...(r.maxAgeSeconds !== undefined ? { MaxAgeSeconds: r.maxAgeSeconds } : {}),
      })),
    },
  }
  return `<?xml version="1.0" encoding="UTF-8"?>\n${builder.build(doc)}`
}

export async function getBucketCors(ctx: S3Context, b: BucketRecord): Promise<void> {
  const rules = corsRulesOf(b)
  if (rules === undefined) {
    throw new S3Error('NoSuchCORSConfiguration', undefined, { BucketName: b.name })
  }
  ctx.res.header('Content-Type', 'application/xml').end(corsConfigurationXml(rules))
}

export async function putBucketCors(ctx: S3Context, b: BucketRecord): Promise<void> {
  const body = await readSmallBody(ctx, MAX_CORS_CONFIG_BYTES)
  const cors = parseCorsConfiguration(body)
  await ctx.deps.buckets.update(b.name, (x) => ({ ...x, settings: { ...x.settings, cors } }))
  ctx.res.end()
}

export async function deleteBucketCors(ctx: S3Context, b: BucketRecord): Promise<void> {
  if (b.settings?.cors !== undefined) {
    await ctx.deps.buckets.update(b.name, (x) => {
      const settings = { ...x.settings }
      delete settings.cors
      return { ...x, settings }
    })
  }
  ctx.res.status(204).end()
}

/** Whether `value` matches a pattern with at most one `*` (any run of characters). */
function wildcardMatch(pattern: string, value: string): boolean {
  const star = pattern.indexOf('*')
  if (star < 0) return pattern === value
  const head = pattern.slice(0, star)
  const tail = pattern.slice(star + 1)
  return value.length >= head.length + tail.length && value.startsWith(head) && value.endsWith(tail)
}

/** Header names of an Access-Control-Request-Headers value, lower-case. */
function requestedHeaders(v: string | undefined): string[] {
  if (v === undefined) return []
  return v
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== '')
}

/** The first rule allowing this origin, method and request headers. */
export function matchCorsRule(
  rules: CorsRule[],
  origin: string,
  method: string,
  headers: string[] = [],
): CorsRule | undefined {
  return rules.find(
    (r) =>
      r.allowedMethods.includes(method) &&
      r.allowedOrigins.some((o) => wildcardMatch(o, origin)) &&
      headers.every((h) => r.allowedHeaders.some((p) => wildcardMatch(p.toLowerCase(), h))),
  )
}

function setCorsHeaders(
  res: Response,
  rule: CorsRule,
  origin: string,
  allowHeaders: string[],
): void {
  const any = rule.allowedOrigins.includes('*')
  res.setHeader('Access-Control-Allow-Origin', any ? '*' : origin)
  if (!any) res.setHeader('Access-Control-Allow-Credentials', 'true')
  res.setHeader('Vary', VARY)
  res.setHeader('Access-Control-Allow-Methods', rule.allowedMethods.join(', '))
  if (allowHeaders.length > 0)
    res.setHeader('Access-Control-Allow-Headers', allowHeaders.join(', '))
  if (rule.exposeHeaders.length > 0)
    res.setHeader('Access-Control-Expose-Headers', rule.exposeHeaders.join(', '))
  if (rule.maxAgeSeconds !== undefined) res.setHeader('Access-Control-Max-Age', rule.maxAgeSeconds)
}

/**
 * Adds the CORS headers of an actual (non-preflight) request when a rule of the bucket
 * allows its origin and method. Set before the operation runs, so error answers carry them
 * too, as S3's do.
 */
export function applyCors(
  res: Response,
  b: BucketRecord | undefined,
  origin: string,
  method: string,
): void {
  const rules = corsRulesOf(b)
  if (rules === undefined) return
  const rule = matchCorsRule(rules, origin, method)
  if (rule !== undefined) setCorsHeaders(res, rule, origin, [])
}

/**
 * Answers a preflight (OPTIONS) request from the bucket's rules: 200 with the Access-Control-*
 * headers, or S3's 400/403 errors. `b` is undefined when the bucket does not exist.
 */
export function answerPreflight(
  headers: Record<string, string>,
  res: Response,
  b: BucketRecord | undefined,
  hasKey: boolean,
): void {
  const origin = headers.origin
  if (origin === undefined || origin === '') throw new S3Error('BadRequest')
  const wanted = headers['access-control-request-method']
  const method = wanted ?? 'OPTIONS'
  if (b === undefined) {
    throw new S3Error('AccessForbidden', 'CORSResponse: Bucket not found', {
      Method: method,
      ResourceType: 'BUCKET',
    })
  }
  const rules = corsRulesOf(b)
  if (rules === undefined) {
    throw new S3Error('AccessForbidden', 'CORSResponse: CORS is not enabled for this bucket.', {
      Method: method,
      ResourceType: 'BUCKET',
    })
  }
  const asked = requestedHeaders(headers['access-control-request-headers'])
  const rule = matchCorsRule(rules, origin, method, asked)
  if (rule === undefined) {
    throw new S3Error('AccessForbidden', NOT_ALLOWED, {
      Method: method,
      ResourceType: hasKey ? 'OBJECT' : 'BUCKET',
    })
  }
  setCorsHeaders(res, rule, origin, asked)
  res.status(200).end()
}
