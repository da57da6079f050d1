/**
 * Admin API calls for end-to-end tests: JSON requests signed with the official SigV4 signer
 * (service 's3', as the CLI signs them), plus the few set-up steps most identity tests need.
 */
import { createHash } from 'node:crypto'
import { Sha256 } from '@aws-crypto/sha256-js'
import { HttpRequest } from '@smithy/protocol-http'
import { SignatureV4 } from '@smithy/signature-v4'
import { ADMIN_PREFIX } from '@tessera/gateway'

export { ADMIN_PREFIX }

/** The project roles of the model; the others are account roles and take no project. */
const PROJECT_ROLES = ['project-admin', 'observer', 's3-admin', 's3-user']

export interface AdminCredentials {
  accessKeyId: string
  secretAccessKey: string
  sessionToken?: string
}

/**
 * One signed admin call. `path` is relative to the prefix ('/users/alice', '/audit?limit=5');
 * its segments go on the wire as given, so encode unusual names with encodeURIComponent. A
 * `Uint8Array` body is sent as is (for malformed-body tests); any other defined body as JSON.
 * Answers the status and the parsed JSON body (the text when it is not JSON; undefined when
 * empty).
 */
export async function adminCall(
  endpoint: string,
  creds: AdminCredentials,
  method: string,
  path: string,
  body?: unknown,
  // biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON the route answers
): Promise<{ status: number; body: any }> {
  const url = new URL(endpoint)
  const q = path.indexOf('?')
  const wirePath = `${ADMIN_PREFIX}${q < 0 ? path : path.slice(0, q)}`
  const query: Record<string, string> = {}
  if (q >= 0) for (const [k, v] of new URLSearchParams(path.slice(q + 1))) query[k] = v
  const payload =
    body === undefined
      ? Buffer.alloc(0)
      : body instanceof Uint8Array
        ? Buffer.from(body)
        : Buffer.from(JSON.stringify(body))
  const headers: Record<string, string> = {
    host: url.host,
    'x-amz-content-sha256': createHash('sha256').update(payload).digest('hex'),
  }
  if (body !== undefined) headers['content-type'] = 'application/json'
  const signer = new SignatureV4({
    service: 's3',
    region: 'us-east-1',
    credentials: creds,
    sha256: Sha256,
    uriEscapePath: false,
    applyChecksum: false,
  })
  const signed = await signer.sign(
    new HttpRequest({
      method,
      protocol: url.protocol,
      hostname: url.hostname,
      ...(url.port !== '' ? { port: Number(url.port) } : {}),
      path: wirePath,
      query,
      headers,
      body: payload,
    }),
  )
  const qs = Object.entries(query)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join('&')
  const res = await fetch(`${url.origin}${wirePath}${qs ? `?${qs}` : ''}`, {
    method,
    headers: signed.headers,
    ...(body !== undefined ? { body: payload } : {}),
  })
  const text = await res.text()
  let parsed: unknown
  if (text !== '') {
    try {
      parsed = JSON.parse(text)
    } catch {
      parsed = text
    }
  }
  return { status: res.status, body: parsed }
}

/** Throws with the answer when the call did not succeed. */
function check(what: string, r: { status: number; body: unknown }): void {
  if (r.status >= 300) throw new Error(`${what}: HTTP ${r.status} ${JSON.stringify(r.body)}`)
}

/** Gives `user` a role (a project role needs `project`). */
export async function bindRole(
  endpoint: string,
  creds: AdminCredentials,
  user: string,
  role: string,
  project?: string,
): Promise<void> {
  const r = await adminCall(endpoint, creds, 'POST', `/users/${encodeURIComponent(user)}/roles`, {
    role,
    ...(project !== undefined ? { project } : {}),
  })
  check(`bind ${role} to ${user}`, r)
}

export async function createProject(
  endpoint: string,
  creds: AdminCredentials,
  name: string,
): Promise<void> {
  check(`create project ${name}`, await adminCall(endpoint, creds, 'POST', '/projects', { name }))
}

/**
 * Creates `user` with `roles` (a project role without a project gets `project`) and an access
 * key bound to `project`, which must exist.
 */
export async function createUserWithKey(
  endpoint: string,
  creds: AdminCredentials,
  user: string,
  project: string,
  roles: { role: string; project?: string }[],
): Promise<{ accessKeyId: string; secretAccessKey: string }> {
  check(`create user ${user}`, await adminCall(endpoint, creds, 'POST', '/users', { name: user }))
  for (const r of roles) {
    const scope = r.project ?? (PROJECT_ROLES.includes(r.role) ? project : undefined)
    await bindRole(endpoint, creds, user, r.role, scope)
  }
  const k = await adminCall(endpoint, creds, 'POST', `/users/${encodeURIComponent(user)}/keys`, {
    project,
  })
  check(`create a key for ${user}`, k)
  return { accessKeyId: k.body.accessKeyId, secretAccessKey: k.body.secretAccessKey }
}
