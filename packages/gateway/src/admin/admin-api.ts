/**
 * The admin API: JSON over HTTP for what the AWS IAM API has no word for (projects, roles,
 * service accounts, guardrails, the audit log) and for the IAM entities too, so one CLI covers
 * them all (design §7). It is mounted at {@link ADMIN_PREFIX} on the S3 port and signed with
 * SigV4 like any S3 request; the gateway authenticates the caller, reads the body and calls
 * {@link handleAdmin}, which routes the call to `IamOperations`. The reference for every route
 * is docs/admin-api.md.
 *
 * Design notes
 *
 * - Every route is declared once in `ROUTES`; a path that matches a route but not its method
 *   answers 405, a path that matches nothing 404, so a typo is never mistaken for a missing
 *   entity.
 * - Inputs are checked here before any operation runs. Two codes, as in AWS IAM: `InvalidInput`
 *   when the request is malformed (not JSON, not an object, an unknown or missing field, a field
 *   of the wrong JSON type) and `ValidationError` when a well-formed value is not allowed (an
 *   unknown role, a date in the past). Unknown fields are refused rather than ignored, so that
 *   `{"maxKeyAge": 30}` cannot silently change nothing.
 * - Secrets appear only in the answers of key and service-account creation. Records hold
 *   epoch-ms timestamps; answers give them as ISO 8601 strings.
 * - Policy names never contain '/', but policy ARNs do, so the policy segment of
 *   `/policies/{policy}` and `/users/{user}/attached/{policy}` takes the rest of the path: this
 *   works whether or not the HTTP layer decoded `%2F` before splitting.
 */

import {
  ACCOUNT_ROLES,
  type AuditEntry,
  type Guardrails,
  PROJECT_ROLES,
  type Role,
} from '../iam/model.ts'
import {
  type AccountView,
  type Caller,
  IAM_ERROR_STATUS,
  IamError,
  type IamErrorCode,
  type IamOperations,
  type KeyView,
  type NewKey,
  type PolicyView,
  type Principal,
  type ProjectView,
  type UserView,
} from '../iam/operations.ts'
import type { ClusterAdminOps } from './cluster-admin.ts'

/** Where the admin API is mounted on the gateway's S3 port ('_' cannot start a bucket name). */
export const ADMIN_PREFIX = '/_tessera/admin/v1'

/** Largest request body the admin API reads, in bytes; policies are far smaller. */
export const ADMIN_MAX_BODY_BYTES = 1024 * 1024

export interface AdminRequest {
  method: string
  /** path after the prefix, e.g. '/users/alice', already percent-decoded per segment */
  path: string
  query: URLSearchParams
  /** parsed JSON body, or undefined */
  body: unknown
}

/** An answer: `body` is sent as JSON; undefined (with status 204) means no body. */
export interface AdminResult {
  status: number
  body: unknown
}

/** Codes of the admin API: the IAM codes plus the two routing ones. */
export type AdminErrorCode = IamErrorCode | 'NoSuchRoute' | 'MethodNotAllowed'

/** Options of {@link handleAdmin}. */
export interface AdminHooks {
  /** Called with any error that is not an IamError (answered as a 500), for the gateway log. */
  onError?(err: unknown): void
  /** Cluster status, request figures and healing (routes /cluster, /requests and /heal). */
  cluster?: ClusterAdminOps
  /** What the caller may do, answered by /whoami for the web console. */
  capabilities?: CapabilityOps
}

/** The capabilities /whoami reports (see console/capabilities.ts), keyed by name. */
export interface CapabilityOps {
  account(c: Caller): Promise<Record<string, boolean>>
  bucket(c: Caller, bucket: string, prefix?: string): Promise<Record<string, boolean>>
  limits(): Record<string, number>
}

/**
 * Routes one admin call to IamOperations. Never throws: IamError → {status, body: {error:
 * {code, message}}}; anything else → 500 ServiceFailure with a generic message.
 */
export async function handleAdmin(
  ops: IamOperations,
  caller: Caller,
  req: AdminRequest,
  hooks: AdminHooks = {},
): Promise<AdminResult> {
  try {
    const segs = splitPath(req.path)
    const method = req.method.toUpperCase()
    const found = matchRoute(segs)
    if (!found) {
      return adminError(
        'NoSuchRoute',
        404,
        `No admin route ${method} ${req.path}; see docs/admin-api.md for the routes`,
        caller.requestId,
      )
    }
    const handler = (found.route.methods as Record<string, Handler | undefined>)[method]
    if (!handler) {
      const allowed = Object.keys(found.route.methods).join(', ')
      return adminError(
        'MethodNotAllowed',
        405,
        `${found.route.path.replace(/[:*](\w+)/g, '{$1}')} does not take ${method}; use ${allowed}`,
        caller.requestId,
      )
    }
    return await handler({
      ops,
      c: caller,
      p: found.params,
      q: req.query,
      body: req.body,
      ...(hooks.cluster ? { cluster: hooks.cluster } : {}),
      ...(hooks.capabilities ? { capabilities: hooks.capabilities } : {}),
    })
  } catch (err) {
    if (isIamError(err)) return adminError(err.code, err.status, err.message, caller.requestId)
    hooks.onError?.(err)
    return adminError(
      'ServiceFailure',
      500,
      `The request failed on the server; the gateway log has the details (request ${caller.requestId})`,
      caller.requestId,
    )
  }
}

/** The JSON error answer: `{ error: { code, message, requestId? } }`. */
export function adminError(
  code: AdminErrorCode | string,
  status: number,
  message: string,
  requestId?: string,
): AdminResult {
  return {
    status,
    body: { error: { code, message, ...(requestId !== undefined ? { requestId } : {}) } },
  }
}

/**
 * The admin path of a raw request path ('/_tessera/admin/v1/users/a%20b' → '/users/a b'), each
 * segment percent-decoded on its own; undefined when the path is not under ADMIN_PREFIX. A
 * segment that is not valid percent-encoding is kept as received.
 */
export function adminPath(rawPath: string): string | undefined {
  if (rawPath === ADMIN_PREFIX) return '/'
  if (!rawPath.startsWith(`${ADMIN_PREFIX}/`)) return undefined
  return rawPath
    .slice(ADMIN_PREFIX.length)
    .split('/')
    .map((s) => {
      try {
        return decodeURIComponent(s)
      } catch {
        return s
      }
    })
    .join('/')
}

/**
 * Parses a request body for {@link handleAdmin}: empty → undefined, else JSON. A body that is
 * too large or not JSON gives the 400 InvalidInput answer to send instead.
 */
export function parseAdminBody(
  raw: Uint8Array,
  requestId?: string,
): { ok: true; body: unknown } | { ok: false; result: AdminResult } {
  if (raw.byteLength > ADMIN_MAX_BODY_BYTES) {
    return {
      ok: false,
      result: adminError(
        'InvalidInput',
        400,
        `The request body is ${raw.byteLength} bytes; the admin API reads at most ${ADMIN_MAX_BODY_BYTES}`,
        requestId,
      ),
    }
  }
  const text = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('utf8')
  if (text.trim() === '') return { ok: true, body: undefined }
  try {
    return { ok: true, body: JSON.parse(text) as unknown }
  } catch (err) {
    return {
      ok: false,
      result: adminError(
        'InvalidInput',
        400,
        `The request body is not valid JSON (${(err as Error).message}); send a JSON object`,
        requestId,
      ),
    }
  }
}

// Routes ---------------------------------------------------------------------------------------

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'

interface Ctx {
  ops: IamOperations
  cluster?: ClusterAdminOps
  capabilities?: CapabilityOps
  c: Caller
  /** Path parameters by name. */
  p: Record<string, string>
  q: URLSearchParams
  body: unknown
}

type Handler = (x: Ctx) => Promise<AdminResult>

interface Route {
  /** The pattern as documented: ':name' is one segment, '*name' the rest of the path. */
  path: string
  segs: string[]
  methods: Partial<Record<Method, Handler>>
}

function route(path: string, methods: Partial<Record<Method, Handler>>): Route {
  return { path, segs: path.split('/').slice(1), methods }
}

const ok = (body: unknown): AdminResult => ({ status: 200, body })
const created = (body: unknown): AdminResult => ({ status: 201, body })
const NO_CONTENT: AdminResult = { status: 204, body: undefined }

/** The cluster operations, or the error that says this gateway has none. */
function clusterOps(x: Ctx): ClusterAdminOps {
  if (x.cluster === undefined)
    throw new IamError('ServiceFailure', 'Cluster status is not available')
  return x.cluster
}

const ROUTES: Route[] = [
  // Cluster and healing -------------------------------------------------------------------------
  route('/cluster', {
    GET: async (x) => {
      noQuery(x.q)
      return ok(await clusterOps(x).status(x.c))
    },
  }),
  route('/requests', {
    GET: async (x) => {
      noQuery(x.q)
      return ok(await clusterOps(x).requestStats(x.c))
    },
  }),
  route('/heal', {
    GET: async (x) => {
      noQuery(x.q)
      return ok(await clusterOps(x).healStatus(x.c))
    },
    POST: async (x) => {
      noQuery(x.q)
      const b = fields(x.body, ['node', 'drive', 'mode'])
      const node = optString(b, 'node')
      const drive = optString(b, 'drive')
      if (node === undefined || drive === undefined) {
        throw invalid(
          'Name the drive to heal: {"node": "n1", "drive": "/mnt/disk1", "mode": "full"}',
        )
      }
      const mode = optEnum(b, 'mode', ['full', 'deep'] as const) ?? 'full'
      return ok(await clusterOps(x).startHeal(x.c, { node, drive, mode }))
    },
  }),

  route('/whoami', {
    GET: async ({ c, q, capabilities, ops }) => {
      queryNames(q, ['bucket', 'prefix'])
      const bucket = q.get('bucket')
      const prefix = q.get('prefix')
      if (prefix !== null && bucket === null) {
        throw invalid('prefix narrows the capabilities of a bucket: give ?bucket=<name> too')
      }
      if (capabilities === undefined) return ok(principalJson(c.principal))
      // The caller's own roles, for the console's header; a key's user may be gone (root).
      let roles: unknown[] = []
      if (!c.principal.root) {
        try {
          roles = (await ops.getUser(c)).roles.map(bindingJson)
        } catch {
          roles = []
        }
      }
      return ok({
        ...principalJson(c.principal),
        roles,
        capabilities: await capabilities.account(c),
        limits: capabilities.limits(),
        ...(bucket !== null && bucket !== ''
          ? {
              bucket: {
                name: bucket,
                ...(prefix !== null ? { prefix } : {}),
                capabilities: await capabilities.bucket(c, bucket, prefix ?? ''),
              },
            }
          : {}),
      })
    },
  }),

  // Account and audit ------------------------------------------------------------------------
  route('/account', {
    GET: async ({ ops, c, q }) => {
      noQuery(q)
      return ok(accountJson(await ops.getAccount(c)))
    },
    PATCH: async ({ ops, c, q, body }) => {
      noQuery(q)
      const b = fields(body, ['maxKeyAgeDays', 'policyMaxBytes', 'guardrails'])
      const change: { maxKeyAgeDays?: number; policyMaxBytes?: number; guardrails?: Guardrails } =
        {}
      const maxKeyAgeDays = optInt(b, 'maxKeyAgeDays', 1)
      if (maxKeyAgeDays !== undefined) change.maxKeyAgeDays = maxKeyAgeDays
      const policyMaxBytes = optInt(b, 'policyMaxBytes', 1)
      if (policyMaxBytes !== undefined) change.policyMaxBytes = policyMaxBytes
      if (b.guardrails !== undefined && b.guardrails !== null) {
        const g = fields(b.guardrails, ['deniedActions', 'offeredActions'], 'guardrails')
        const denied = optActions(g, 'deniedActions', 'guardrails.deniedActions')
        const offered =
          g.offeredActions === null
            ? null
            : optActions(g, 'offeredActions', 'guardrails.offeredActions')
        if (denied === undefined && offered === undefined) {
          throw invalid(
            'guardrails names nothing to change: give deniedActions, offeredActions, or both',
          )
        }
        // Fields left out keep their value: read the current ones only when one is missing.
        const current =
          denied === undefined || offered === undefined
            ? (await ops.getAccount(c)).guardrails
            : undefined
        const deniedActions = denied ?? current?.deniedActions ?? []
        const offeredActions = offered === undefined ? current?.offeredActions : offered
        change.guardrails = {
          deniedActions,
          ...(offeredActions ? { offeredActions } : {}),
        }
      }
      if (Object.keys(change).length === 0) {
        throw invalid('Nothing to change: give maxKeyAgeDays, policyMaxBytes or guardrails')
      }
      return ok(accountJson(await ops.updateAccount(c, change)))
    },
  }),
  route('/audit', {
    GET: async ({ ops, c, q }) => {
      queryNames(q, ['since', 'limit'])
      const opts: { since?: number; limit?: number } = {}
      const since = q.get('since')
      if (since !== null) opts.since = timestamp(since, 'since')
      const limit = q.get('limit')
      if (limit !== null) opts.limit = queryInt(limit, 'limit', 1)
      const entries = await ops.listAudit(c, opts)
      return ok({ entries: entries.map(auditJson) })
    },
  }),

  // Projects ----------------------------------------------------------------------------------
  route('/projects', {
    GET: async ({ ops, c, q }) => {
      noQuery(q)
      return ok({ projects: (await ops.listProjects(c)).map(projectJson) })
    },
    POST: async ({ ops, c, q, body }) => {
      noQuery(q)
      const b = fields(body, ['name', 'description'])
      const description = optString(b, 'description')
      const project = await ops.createProject(c, {
        name: reqString(b, 'name'),
        ...(description !== undefined ? { description } : {}),
      })
      return created(projectJson(project))
    },
  }),
  route('/projects/:project', {
    DELETE: async ({ ops, c, p, q }) => {
      noQuery(q)
      await ops.deleteProject(c, p.project!)
      return NO_CONTENT
    },
  }),

  // Users ---------------------------------------------------------------------------------------
  route('/users', {
    GET: async ({ ops, c, q }) => {
      noQuery(q)
      return ok({ users: (await ops.listUsers(c)).map(userJson) })
    },
    POST: async ({ ops, c, q, body }) => {
      noQuery(q)
      const b = fields(body, ['name', 'kind', 'email'])
      const kind = optEnum(b, 'kind', ['person', 'service'] as const)
      const email = optString(b, 'email')
      const user = await ops.createUser(c, {
        name: reqString(b, 'name'),
        ...(kind !== undefined ? { kind } : {}),
        ...(email !== undefined ? { email } : {}),
      })
      return created(userJson(user))
    },
  }),
  route('/users/:user', {
    GET: async ({ ops, c, p, q }) => {
      noQuery(q)
      return ok(userJson(await ops.getUser(c, p.user!)))
    },
    DELETE: async ({ ops, c, p, q }) => {
      noQuery(q)
      await ops.deleteUser(c, p.user!)
      return NO_CONTENT
    },
  }),
  route('/users/:user/email', {
    PUT: async ({ ops, c, p, q, body }) => {
      noQuery(q)
      const b = fields(body, ['email'])
      return ok(userJson(await ops.setUserEmail(c, p.user!, reqString(b, 'email'))))
    },
    DELETE: async ({ ops, c, p, q }) => {
      noQuery(q)
      return ok(userJson(await ops.setUserEmail(c, p.user!, undefined)))
    },
  }),
  route('/users/:user/disable', {
    POST: async ({ ops, c, p, q, body }) => {
      noQuery(q)
      fields(body, [])
      return ok(userJson(await ops.setUserDisabled(c, p.user!, true)))
    },
  }),
  route('/users/:user/enable', {
    POST: async ({ ops, c, p, q, body }) => {
      noQuery(q)
      fields(body, [])
      return ok(userJson(await ops.setUserDisabled(c, p.user!, false)))
    },
  }),

  // Role bindings -----------------------------------------------------------------------------
  route('/users/:user/roles', {
    GET: async ({ ops, c, p, q }) => {
      noQuery(q)
      return ok({ roles: (await ops.getUser(c, p.user!)).roles.map(bindingJson) })
    },
    POST: async ({ ops, c, p, q, body }) => {
      noQuery(q)
      const b = fields(body, ['role', 'project'])
      const { role, project } = binding(reqString(b, 'role'), optString(b, 'project'))
      return ok(userJson(await ops.bindRole(c, p.user!, role, project)))
    },
    DELETE: async ({ ops, c, p, q }) => {
      queryNames(q, ['role', 'project'])
      const roleName = q.get('role')
      if (roleName === null || roleName === '') {
        throw invalid('Say which binding to remove: ?role=<role>[&project=<project>]')
      }
      const { role, project } = binding(roleName, q.get('project') ?? undefined)
      return ok(userJson(await ops.unbindRole(c, p.user!, role, project)))
    },
  }),

  // Access keys ---------------------------------------------------------------------------------
  route('/users/:user/keys', {
    GET: async ({ ops, c, p, q }) => {
      noQuery(q)
      return ok({ keys: (await ops.listAccessKeys(c, p.user!)).map(keyJson) })
    },
    POST: async ({ ops, c, p, q, body }) => {
      noQuery(q)
      return created(newKeyJson(await createKey(ops, c, fields(body, KEY_FIELDS), p.user!)))
    },
  }),
  route('/keys', {
    GET: async ({ ops, c, q }) => {
      queryNames(q, ['user'])
      const user = q.get('user') || undefined
      return ok({ keys: (await ops.listAccessKeys(c, user)).map(keyJson) })
    },
    POST: async ({ ops, c, q, body }) => {
      noQuery(q)
      const b = fields(body, ['user', ...KEY_FIELDS])
      return created(newKeyJson(await createKey(ops, c, b, optString(b, 'user'))))
    },
  }),
  route('/keys/:id', {
    PATCH: async ({ ops, c, p, q, body }) => {
      noQuery(q)
      const b = fields(body, ['status', 'user'])
      const status = optEnum(b, 'status', STATUSES)
      if (status === undefined) throw invalid('Give the new status: {"status": "Inactive"}')
      return ok(keyJson(await ops.updateAccessKey(c, p.id!, status, optString(b, 'user'))))
    },
    DELETE: async ({ ops, c, p, q }) => {
      queryNames(q, ['user'])
      await ops.deleteAccessKey(c, p.id!, q.get('user') || undefined)
      return NO_CONTENT
    },
  }),

  // Inline user policies ------------------------------------------------------------------------
  route('/users/:user/policies', {
    GET: async ({ ops, c, p, q }) => {
      noQuery(q)
      return ok({ policies: await ops.listUserPolicies(c, p.user!) })
    },
  }),
  route('/users/:user/policies/:policy', {
    GET: async ({ ops, c, p, q }) => {
      noQuery(q)
      const document = await ops.getUserPolicy(c, p.user!, p.policy!)
      return ok({ user: p.user, name: p.policy, document: documentJson(document) })
    },
    PUT: async ({ ops, c, p, q, body }) => {
      noQuery(q)
      const b = fields(body, ['document'])
      await ops.putUserPolicy(c, p.user!, p.policy!, reqDocument(b, 'document'))
      return NO_CONTENT
    },
    DELETE: async ({ ops, c, p, q }) => {
      noQuery(q)
      await ops.deleteUserPolicy(c, p.user!, p.policy!)
      return NO_CONTENT
    },
  }),

  // Managed policies ----------------------------------------------------------------------------
  route('/policies', {
    GET: async ({ ops, c, q }) => {
      queryNames(q, ['scope'])
      const scope = q.get('scope')
      if (scope !== null && !SCOPES.includes(scope as (typeof SCOPES)[number])) {
        throw validation(`scope must be one of ${SCOPES.join(', ')}, not '${scope}'`)
      }
      const policies = await ops.listPolicies(c, (scope ?? undefined) as Scope | undefined)
      return ok({ policies: policies.map(policyJson) })
    },
    POST: async ({ ops, c, q, body }) => {
      noQuery(q)
      const b = fields(body, ['name', 'document', 'description'])
      const description = optString(b, 'description')
      const policy = await ops.createPolicy(c, {
        name: reqString(b, 'name'),
        document: reqDocument(b, 'document'),
        ...(description !== undefined ? { description } : {}),
      })
      return created(policyJson(policy))
    },
  }),
  route('/policies/*policy', {
    GET: async ({ ops, c, p, q }) => {
      noQuery(q)
      return ok(policyJson(await ops.getPolicy(c, p.policy!)))
    },
    DELETE: async ({ ops, c, p, q }) => {
      noQuery(q)
      await ops.deletePolicy(c, p.policy!)
      return NO_CONTENT
    },
  }),
  route('/users/:user/attached', {
    GET: async ({ ops, c, p, q }) => {
      noQuery(q)
      const attached = await ops.listAttachedUserPolicies(c, p.user!)
      return ok({ attached: attached.map((a) => ({ name: a.name, arn: a.arn })) })
    },
    POST: async ({ ops, c, p, q, body }) => {
      noQuery(q)
      const b = fields(body, ['policy'])
      await ops.attachUserPolicy(c, p.user!, reqString(b, 'policy'))
      return NO_CONTENT
    },
  }),
  route('/users/:user/attached/*policy', {
    DELETE: async ({ ops, c, p, q }) => {
      noQuery(q)
      await ops.detachUserPolicy(c, p.user!, p.policy!)
      return NO_CONTENT
    },
  }),

  // Service accounts ----------------------------------------------------------------------------
  route('/service-accounts', {
    GET: async ({ ops, c, q }) => {
      queryNames(q, ['user'])
      const list = await ops.listServiceAccounts(c, q.get('user') || undefined)
      return ok({ serviceAccounts: list.map(keyJson) })
    },
    POST: async ({ ops, c, q, body }) => {
      noQuery(q)
      const b = fields(body, ['user', 'project', 'name', 'description', 'policy'])
      const init: {
        user?: string
        project?: string
        name?: string
        description?: string
        policy?: string
      } = {}
      for (const k of ['user', 'project', 'name', 'description'] as const) {
        const v = optString(b, k)
        if (v !== undefined) init[k] = v
      }
      const policy = optDocument(b, 'policy')
      if (policy !== undefined) init.policy = policy
      return created(newKeyJson(await ops.createServiceAccount(c, init), 'serviceAccount'))
    },
  }),
  route('/service-accounts/:id', {
    GET: async ({ ops, c, p, q }) => {
      queryNames(q, ['user'])
      // The policy call authorizes the caller and answers NoSuchEntity for an unknown id.
      const policy = await ops.getServiceAccountPolicy(c, p.id!)
      const view = await findServiceAccount(ops, c, p.id!, q.get('user') || undefined)
      return ok({
        ...(view ? keyJson(view) : { id: p.id }),
        policy: policy === undefined ? null : documentJson(policy),
      })
    },
    PATCH: async ({ ops, c, p, q, body }) => {
      noQuery(q)
      const b = fields(body, ['status', 'policy', 'description'])
      const change: {
        status?: 'Active' | 'Inactive'
        policy?: string | null
        description?: string
      } = {}
      const status = optEnum(b, 'status', STATUSES)
      if (status !== undefined) change.status = status
      if (b.policy === null) change.policy = null
      else {
        const policy = optDocument(b, 'policy')
        if (policy !== undefined) change.policy = policy
      }
      const description = optString(b, 'description')
      if (description !== undefined) change.description = description
      if (Object.keys(change).length === 0) {
        throw invalid('Nothing to change: give status, policy (null removes it) or description')
      }
      return ok(keyJson(await ops.updateServiceAccount(c, p.id!, change)))
    },
    DELETE: async ({ ops, c, p, q }) => {
      noQuery(q)
      await ops.deleteServiceAccount(c, p.id!)
      return NO_CONTENT
    },
  }),
]

const KEY_FIELDS = ['project', 'expires'] as const
const STATUSES = ['Active', 'Inactive'] as const
const SCOPES = ['All', 'AWS', 'Local'] as const
type Scope = (typeof SCOPES)[number]
const ROLES: readonly string[] = [...ACCOUNT_ROLES, ...PROJECT_ROLES]

async function createKey(
  ops: IamOperations,
  c: Caller,
  b: Record<string, unknown>,
  user: string | undefined,
): Promise<NewKey> {
  const init: { user?: string; project?: string; expires?: number } = {}
  if (user !== undefined) init.user = user
  const project = optString(b, 'project')
  if (project !== undefined) init.project = project
  if (b.expires !== undefined && b.expires !== null) {
    const expires = timestamp(b.expires, 'expires')
    if (expires <= Date.now()) {
      throw validation(`expires (${new Date(expires).toISOString()}) must be in the future`)
    }
    init.expires = expires
  }
  return ops.createAccessKey(c, init)
}

/**
 * The list entry of service account `id` (IamOperations has no getter for one): among `user`'s
 * when given, else among those the caller lists by default (its own; every one for root), else
 * among every user's, for the account-wide roles that may see other users' service accounts.
 */
async function findServiceAccount(
  ops: IamOperations,
  c: Caller,
  id: string,
  user: string | undefined,
): Promise<KeyView | undefined> {
  const first = (await ops.listServiceAccounts(c, user)).find((k) => k.id === id)
  if (first || user !== undefined) return first
  for (const u of await ops.listUsers(c)) {
    if (u.serviceAccounts === 0 || u.name === c.principal.name) continue
    const found = (await ops.listServiceAccounts(c, u.name)).find((k) => k.id === id)
    if (found) return found
  }
  return undefined
}

function binding(
  roleName: string,
  project: string | undefined,
): { role: Role; project: string | undefined } {
  if (!ROLES.includes(roleName)) {
    throw validation(
      `Unknown role '${roleName}'. Account roles: ${ACCOUNT_ROLES.join(', ')}; ` +
        `project roles (need a project): ${PROJECT_ROLES.join(', ')}`,
    )
  }
  const role = roleName as Role
  const projectRole = (PROJECT_ROLES as readonly string[]).includes(role)
  if (projectRole && (project === undefined || project === '')) {
    throw validation(`${role} is a project role: say which project ("project": "<name>")`)
  }
  if (!projectRole && project !== undefined && project !== '') {
    throw validation(`${role} is an account role and takes no project; leave project out`)
  }
  return { role, project: projectRole ? project : undefined }
}

// Paths ------------------------------------------------------------------------------------------

function splitPath(path: string): string[] {
  const segs = (path.startsWith('/') ? path.slice(1) : path).split('/')
  // One trailing slash is tolerated ('/users/' is '/users').
  if (segs.length > 1 && segs[segs.length - 1] === '') segs.pop()
  return segs
}

function matchRoute(segs: string[]): { route: Route; params: Record<string, string> } | undefined {
  next: for (const r of ROUTES) {
    const rest = r.segs[r.segs.length - 1]!.startsWith('*')
    if (rest ? segs.length < r.segs.length : segs.length !== r.segs.length) continue
    const params: Record<string, string> = {}
    for (const [i, want] of r.segs.entries()) {
      if (want.startsWith('*')) {
        params[want.slice(1)] = segs.slice(i).join('/')
      } else if (want.startsWith(':')) {
        params[want.slice(1)] = segs[i]!
      } else if (want !== segs[i]) {
        continue next
      }
    }
    // An empty name ('/users//keys') is no route rather than a lookup of ''.
    if (Object.values(params).some((v) => v === '')) continue
    return { route: r, params }
  }
  return undefined
}

// Input checks -----------------------------------------------------------------------------------

const invalid = (message: string): IamError => new IamError('InvalidInput', message)
const validation = (message: string): IamError => new IamError('ValidationError', message)

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/**
 * The body (or a nested object, named `where`) as an object holding only `allowed` fields. An
 * absent body is an empty object, so a missing required field is reported by name.
 */
function fields(
  body: unknown,
  allowed: readonly string[],
  where?: string,
): Record<string, unknown> {
  if (body === undefined) return {}
  const what = where ?? 'The request body'
  if (!isPlainObject(body)) {
    throw invalid(`${what} must be a JSON object, not ${jsonType(body)}`)
  }
  for (const k of Object.keys(body)) {
    if (!allowed.includes(k)) {
      throw invalid(
        allowed.length === 0
          ? `${what} takes no fields; remove '${k}'`
          : `Unknown field '${k}' in ${where ?? 'the request body'}; expected ${allowed.join(', ')}`,
      )
    }
  }
  return body
}

function jsonType(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  return `a ${typeof v}`
}

function noQuery(q: URLSearchParams): void {
  queryNames(q, [])
}

/** Refuses query parameters other than `allowed` (SigV4 presigned parameters pass). */
function queryNames(q: URLSearchParams, allowed: readonly string[]): void {
  for (const name of q.keys()) {
    if (allowed.includes(name) || name.toLowerCase().startsWith('x-amz-')) continue
    throw invalid(
      allowed.length === 0
        ? `This route takes no query parameter; remove '${name}'`
        : `Unknown query parameter '${name}'; expected ${allowed.join(', ')}`,
    )
  }
}

function optString(b: Record<string, unknown>, key: string): string | undefined {
  const v = b[key]
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'string') throw invalid(`${key} must be a string, not ${jsonType(v)}`)
  return v
}

function reqString(b: Record<string, unknown>, key: string): string {
  const v = optString(b, key)
  if (v === undefined || v === '') throw invalid(`${key} is required (a non-empty string)`)
  return v
}

function optEnum<T extends string>(
  b: Record<string, unknown>,
  key: string,
  values: readonly T[],
): T | undefined {
  const v = optString(b, key)
  if (v === undefined) return undefined
  if (!values.includes(v as T)) {
    throw validation(`${key} must be one of ${values.join(', ')}, not '${v}'`)
  }
  return v as T
}

function optInt(b: Record<string, unknown>, key: string, min: number): number | undefined {
  const v = b[key]
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'number') throw invalid(`${key} must be a number, not ${jsonType(v)}`)
  if (!Number.isSafeInteger(v) || v < min) {
    throw validation(`${key} must be a whole number ≥ ${min}, not ${v}`)
  }
  return v
}

function queryInt(v: string, key: string, min: number): number {
  const n = /^\d+$/.test(v) ? Number(v) : Number.NaN
  if (!Number.isSafeInteger(n) || n < min) {
    throw validation(`${key} must be a whole number ≥ ${min}, not '${v}'`)
  }
  return n
}

function optActions(b: Record<string, unknown>, key: string, name: string): string[] | undefined {
  const v = b[key]
  if (v === undefined) return undefined
  if (!Array.isArray(v)) throw invalid(`${name} must be an array of action names`)
  for (const a of v) {
    if (typeof a !== 'string' || !/^[^\s]+$/.test(a)) {
      throw validation(
        `${name} must hold action names such as "s3:DeleteObjectVersion" or "s3:Get*", ` +
          `not ${JSON.stringify(a)}`,
      )
    }
  }
  return v as string[]
}

const ISO_DATE =
  /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2}))?$/i

/**
 * A point in time from JSON or a query string: epoch milliseconds (a number, or digits), an ISO
 * 8601 date (midnight UTC) or an ISO 8601 date-time with a zone.
 */
function timestamp(v: unknown, key: string): number {
  if (typeof v === 'number') {
    if (Number.isSafeInteger(v) && v >= 0) return v
  } else if (typeof v === 'string') {
    if (/^\d+$/.test(v)) {
      const n = Number(v)
      if (Number.isSafeInteger(n)) return n
    } else if (ISO_DATE.test(v)) {
      const n = Date.parse(v)
      if (!Number.isNaN(n)) return n
    }
  } else {
    throw invalid(`${key} must be a string or a number, not ${jsonType(v)}`)
  }
  throw validation(
    `${key} must be an ISO 8601 date (2025-01-31), a date-time with a zone ` +
      `(2025-01-31T12:00:00Z) or epoch milliseconds, not ${JSON.stringify(v)}`,
  )
}

/** A policy document given as a JSON object (or a string holding one), as JSON text. */
function optDocument(b: Record<string, unknown>, key: string): string | undefined {
  const v = b[key]
  if (v === undefined || v === null) return undefined
  if (typeof v === 'string') {
    if (v.trim() === '') throw invalid(`${key} is empty; give the policy document`)
    return v
  }
  if (isPlainObject(v)) return JSON.stringify(v)
  throw invalid(`${key} must be a policy document (a JSON object), not ${jsonType(v)}`)
}

function reqDocument(b: Record<string, unknown>, key: string): string {
  const v = optDocument(b, key)
  if (v === undefined) throw invalid(`${key} is required: the policy document as a JSON object`)
  return v
}

function isIamError(err: unknown): err is IamError {
  if (err instanceof IamError) return true
  // Also the plain form an IamError takes after crossing a worker or RPC boundary.
  const e = err as { name?: unknown; code?: unknown; status?: unknown; message?: unknown } | null
  return (
    typeof e === 'object' &&
    e !== null &&
    e.name === 'IamError' &&
    typeof e.code === 'string' &&
    Object.hasOwn(IAM_ERROR_STATUS, e.code) &&
    typeof e.status === 'number' &&
    typeof e.message === 'string'
  )
}

// Answers ----------------------------------------------------------------------------------------

function iso(ms: number | undefined): string | undefined {
  return ms !== undefined && Number.isFinite(ms) ? new Date(ms).toISOString() : undefined
}

/** A stored policy document as JSON: the parsed object (the text itself if it does not parse). */
function documentJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown
  } catch {
    return text
  }
}

function bindingJson(r: { role: Role; project?: string }): { role: Role; project?: string } {
  return r.project !== undefined ? { role: r.role, project: r.project } : { role: r.role }
}

function principalJson(p: Principal): Record<string, unknown> {
  return {
    kind: p.kind,
    accessKeyId: p.accessKeyId,
    name: p.name,
    userId: p.userId,
    arn: p.arn,
    canonicalId: p.canonicalId,
    displayName: p.displayName,
    project: p.project,
    root: p.root,
    expires: iso(p.expires),
    sessionName: p.sessionName,
    sessionPolicy: p.sessionPolicy !== undefined ? documentJson(p.sessionPolicy) : undefined,
    servicePolicy: p.servicePolicy !== undefined ? documentJson(p.servicePolicy) : undefined,
  }
}

function accountJson(a: AccountView): Record<string, unknown> {
  return {
    id: a.id,
    maxKeyAgeDays: a.maxKeyAgeDays,
    policyMaxBytes: a.policyMaxBytes,
    guardrails: {
      deniedActions: [...a.guardrails.deniedActions],
      ...(a.guardrails.offeredActions ? { offeredActions: [...a.guardrails.offeredActions] } : {}),
    },
  }
}

function auditJson(e: AuditEntry): Record<string, unknown> {
  return {
    at: iso(e.at),
    who: e.who,
    accessKeyId: e.accessKeyId,
    action: e.action,
    target: e.target,
    detail: e.detail,
    requestId: e.requestId,
    sourceIp: e.sourceIp,
  }
}

function projectJson(p: ProjectView): Record<string, unknown> {
  return {
    name: p.name,
    created: iso(p.created),
    description: p.description,
    buckets: p.buckets,
    members: p.members,
  }
}

function userJson(u: UserView): Record<string, unknown> {
  return {
    name: u.name,
    id: u.id,
    arn: u.arn,
    kind: u.kind,
    created: iso(u.created),
    roles: u.roles.map(bindingJson),
    attached: [...u.attached],
    policies: [...u.policies],
    disabled: u.disabled,
    serviceAccounts: u.serviceAccounts,
    ...(u.email !== undefined ? { email: u.email } : {}),
  }
}

function keyJson(k: KeyView): Record<string, unknown> {
  return {
    id: k.id,
    kind: k.kind,
    user: k.user,
    project: k.project,
    status: k.status,
    state: k.state,
    created: iso(k.created),
    lastUsed: iso(k.lastUsed),
    expires: iso(k.expires),
    ageDays: k.ageDays,
    rotationDue: iso(k.rotationDue),
    name: k.name,
    description: k.description,
    hasPolicy: k.hasPolicy,
  }
}

/** The one answer that holds a secret. */
function newKeyJson(n: NewKey, view: 'key' | 'serviceAccount' = 'key'): Record<string, unknown> {
  return {
    accessKeyId: n.key.id,
    secretAccessKey: n.secretAccessKey,
    [view]: keyJson(n.key),
  }
}

function policyJson(p: PolicyView): Record<string, unknown> {
  return {
    name: p.name,
    arn: p.arn,
    id: p.id,
    builtin: p.builtin,
    description: p.description,
    created: iso(p.created),
    updated: iso(p.updated),
    attachmentCount: p.attachmentCount,
    document: documentJson(p.document),
  }
}
