/**
 * The console's two clients, both signing in the browser with the signed-in credentials:
 * the AWS SDK's S3 client for buckets and objects, and {@link AdminClient} for the JSON admin
 * API (docs/admin-api.md). Both talk to the origin that served the console, so the gateway
 * applies exactly the access decision it applies to any other client.
 */

import { Sha256 } from '@aws-crypto/sha256-js'
import { S3Client } from '@aws-sdk/client-s3'
import { SignatureV4 } from '@smithy/signature-v4'
import type { Credentials } from './session.ts'

export const ADMIN_PREFIX = '/_tessera/admin/v1'

export function makeS3(c: Credentials): S3Client {
  return new S3Client({
    endpoint: window.location.origin,
    region: c.region,
    forcePathStyle: true,
    credentials: {
      accessKeyId: c.accessKeyId,
      secretAccessKey: c.secretAccessKey,
      ...(c.sessionToken ? { sessionToken: c.sessionToken } : {}),
    },
    // Checksums only where S3 needs them: the gateway verifies what it is sent either way.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  })
}

/** An admin API error answer: `{error: {code, message}}` with its HTTP status. */
export class AdminError extends Error {
  readonly code: string
  readonly status: number

  constructor(code: string, message: string, status: number) {
    super(message)
    this.code = code
    this.status = status
  }
}

/** RFC 3986 encoding, as SigV4 canonicalizes (encodeURIComponent leaves !'()* alone). */
export function rfc3986(s: string): string {
  return encodeURIComponent(s).replace(
    /[!'()*]/g,
    (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`,
  )
}

async function sha256Hex(body: string): Promise<string> {
  const h = new Sha256()
  h.update(body)
  const d = await h.digest()
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('')
}

/** SigV4-signed JSON calls to the admin API (service s3, the body's hash signed). */
export class AdminClient {
  #signer: SignatureV4

  constructor(c: Credentials) {
    this.#signer = new SignatureV4({
      service: 's3',
      region: c.region,
      credentials: {
        accessKeyId: c.accessKeyId,
        secretAccessKey: c.secretAccessKey,
        ...(c.sessionToken ? { sessionToken: c.sessionToken } : {}),
      },
      sha256: Sha256,
      // Paths are encoded once, by us, as S3 signs them.
      uriEscapePath: false,
    })
  }

  /**
   * Calls `method path` (path relative to the admin prefix, segments already given as plain
   * strings) and returns the parsed JSON answer, or undefined for 204. Throws AdminError.
   */
  async call<T>(
    method: string,
    segments: string[],
    opts: { query?: Record<string, string | undefined>; body?: unknown } = {},
  ): Promise<T> {
    const path = `${ADMIN_PREFIX}/${segments.map(rfc3986).join('/')}`
    const query: Record<string, string> = {}
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) query[k] = v
    const body = opts.body === undefined ? '' : JSON.stringify(opts.body)
    const url = new URL(window.location.origin)
    const signed = await this.#signer.sign({
      method,
      protocol: url.protocol,
      hostname: url.hostname,
      ...(url.port ? { port: Number(url.port) } : {}),
      path,
      query,
      headers: {
        host: url.host,
        'x-amz-content-sha256': await sha256Hex(body),
        ...(body !== '' ? { 'content-type': 'application/json' } : {}),
      },
      body,
    })
    const qs = Object.keys(query)
      .sort()
      .map((k) => `${rfc3986(k)}=${rfc3986(query[k] ?? '')}`)
      .join('&')
    const headers = new Headers()
    // The browser sets Host itself (to the same value that was signed).
    for (const [k, v] of Object.entries(signed.headers)) if (k !== 'host') headers.set(k, v)
    const res = await fetch(`${path}${qs ? `?${qs}` : ''}`, {
      method,
      headers,
      ...(body !== '' ? { body } : {}),
      credentials: 'omit',
      cache: 'no-store',
    })
    if (res.status === 204) return undefined as T
    const text = await res.text()
    let json: unknown
    try {
      json = text === '' ? undefined : JSON.parse(text)
    } catch {
      throw new AdminError(
        'BadAnswer',
        `The gateway answered ${res.status}: ${text.slice(0, 200)}`,
        res.status,
      )
    }
    if (!res.ok) {
      const e = (json as { error?: { code?: string; message?: string } } | undefined)?.error
      throw new AdminError(
        e?.code ?? 'Error',
        e?.message ?? `The gateway answered ${res.status}`,
        res.status,
      )
    }
    return json as T
  }
}

/** Account-level capabilities from /whoami (see docs/admin-api.md). */
export interface AccountCaps {
  listBuckets: boolean
  createBucket: boolean
  viewUsers: boolean
  manageUsers: boolean
  issueKeys: boolean
  issueOwnKeys: boolean
  bindRoles: boolean
  viewProjects: boolean
  manageProjects: boolean
  viewPolicies: boolean
  managePolicies: boolean
  attachPolicies: boolean
  viewAccount: boolean
  manageAccount: boolean
  viewAudit: boolean
  viewCluster: boolean
  viewHeal: boolean
  startHeal: boolean
}

/** Capabilities in one bucket (and prefix) from /whoami?bucket=. */
export interface BucketCaps {
  list: boolean
  listVersions: boolean
  read: boolean
  readVersion: boolean
  upload: boolean
  delete: boolean
  deleteVersion: boolean
  readTags: boolean
  writeTags: boolean
  readVersioning: boolean
  writeVersioning: boolean
  readLifecycle: boolean
  writeLifecycle: boolean
  readPolicy: boolean
  writePolicy: boolean
  readCors: boolean
  writeCors: boolean
  readPublicAccessBlock: boolean
  writePublicAccessBlock: boolean
  readAcl: boolean
  deleteBucket: boolean
}

export interface Whoami {
  kind: 'root' | 'user' | 'service-account' | 'session'
  accessKeyId: string
  name: string
  arn: string
  project?: string
  root: boolean
  expires?: string
  roles: { role: string; project?: string }[]
  capabilities: AccountCaps
  /** Limits the console checks before sending (the gateway checks them again). */
  limits?: { policyMaxBytes: number }
  bucket?: { name: string; prefix?: string; capabilities: BucketCaps }
}

/** One error's text for the UI: S3 and admin errors carry a code worth showing. */
export function errorText(err: unknown): string {
  if (err instanceof AdminError) return `${err.code}: ${err.message}`
  const e = err as { name?: string; message?: string; Code?: string }
  if (e && typeof e === 'object') {
    const code = e.Code ?? e.name
    return code && code !== 'Error' ? `${code}: ${e.message ?? ''}` : (e.message ?? String(err))
  }
  return String(err)
}

/**
 * A destructive action behind a confirmation: asks `question`, runs `action` if the user
 * agrees, and shows its error (if any) through `showError`.
 */
export async function confirmThen(
  question: string,
  showError: (text: string) => void,
  action: () => Promise<unknown>,
): Promise<void> {
  if (!window.confirm(question)) return
  try {
    await action()
  } catch (err) {
    showError(errorText(err))
  }
}

/** Signs in with `creds`: asks the gateway who they are and what they may do. */
export async function signIn(creds: Credentials): Promise<Whoami> {
  return new AdminClient(creds).call<Whoami>('GET', ['whoami'])
}
