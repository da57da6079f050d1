/**
 * The identity operations (IamOperations) over the identity store: each one authorizes its
 * caller with the decision of design §7, validates its input, writes the records at quorum
 * and appends to the audit log. Secrets are generated here from the CSPRNG, sealed before
 * they are stored, and returned only by the creating call.
 */
import { createHash } from 'node:crypto'
import type { BucketRecord } from '@tessera/protocol'
import type { Logger } from '../s3/context.ts'
import { BUILTIN_POLICIES } from './actions.ts'
import type { ClusterAccess, SessionClaims } from './cluster-access.ts'
import { newAccessKeyId, newSecretAccessKey, randomId, type Sealer } from './crypto.ts'
import { decide } from './decide.ts'
import {
  ACCOUNT_ROLES,
  type AccessKeyRecord,
  type AuditEntry,
  arnOfPolicy,
  arnOfUser,
  DEFAULT_PROJECT,
  type Guardrails,
  type IamSnapshot,
  MAX_SERVICE_ACCOUNTS_PER_USER,
  type ManagedPolicyRecord,
  PROJECT_ROLES,
  type ProjectRecord,
  type Role,
  type UserRecord,
} from './model.ts'
import {
  type AccountView,
  type Caller,
  IamError,
  type IamOperations,
  type KeyView,
  type NewKey,
  type PolicyView,
  type ProjectView,
  type SessionCredentials,
  type UserView,
} from './operations.ts'
import { PolicyError, parsePolicy } from './policy.ts'
import type { IamStore } from './store.ts'

/** Access keys one user may hold (across projects). */
export const MAX_KEYS_PER_USER = 20
/** Managed policies one user may have attached. */
export const MAX_ATTACHED_POLICIES = 20
/** Inline policies one user may have. */
export const MAX_INLINE_POLICIES = 20
export const MIN_SESSION_SECONDS = 900
export const MAX_SESSION_SECONDS = 43_200
export const DEFAULT_SESSION_SECONDS = 3600

const USER_NAME = /^[\w+=,.@-]{1,64}$/
const POLICY_NAME = /^[\w+=,.@-]{1,128}$/
const PROJECT_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/
const GUARDRAIL_ACTION = /^(\*|[a-z0-9-]+:[A-Za-z0-9*?]+)$/
const BUILTIN_ARN_PREFIX = 'arn:aws:iam::aws:policy/'

export interface IamInit {
  store: IamStore
  sealer: Sealer
  access: ClusterAccess
  log: Logger
  /** Every bucket (for project sizes and refusing to delete a project that has buckets). */
  listBuckets(): Promise<BucketRecord[]>
}

export class Iam implements IamOperations {
  #init: IamInit

  constructor(init: IamInit) {
    this.#init = init
  }

  get #snap(): IamSnapshot {
    return this.#init.store.snapshot
  }

  /** The account's policy size limit, in bytes of minified JSON. */
  get policyMaxBytes(): number {
    return this.#snap.account.policyMaxBytes
  }

  // ---- authorization and audit -------------------------------------------------------

  /** Authorizes an admin action that is not an identity operation (cluster, healing). */
  authorizeAdmin(c: Caller, action: string, what: string, opts: { probe?: boolean } = {}): void {
    this.#authorize(c, action, `arn:aws:iam::${this.#snap.account.id}:${what}`, undefined, opts)
  }

  #authorize(
    c: Caller,
    action: string,
    resource: string,
    targetUser?: string,
    opts: { probe?: boolean } = {},
  ): void {
    const d = decide(
      this.#snap,
      {
        principal: c.principal,
        action,
        resource,
        ...(targetUser !== undefined ? { targetUser } : {}),
        context: this.#init.access.conditionContext(
          { principal: c.principal },
          {
            action,
            request: {
              requestId: c.requestId,
              sourceIp: c.sourceIp,
              secure: c.secure,
              headers: {},
              params: new URLSearchParams(),
            },
          },
        ),
      },
      this.#init.access.policies,
    )
    if (!d.allowed) {
      // A probe (the console's capabilities) is not a request: its denials are not logged.
      if (!opts.probe)
        this.#init.log.info(
          {
            reqId: c.requestId,
            principal: c.principal.arn || c.principal.name,
            accessKeyId: c.principal.accessKeyId,
            action,
            resource,
            reason: d.reason,
          },
          'access denied',
        )
      throw new IamError(
        'AccessDenied',
        `User: ${c.principal.arn || c.principal.name} is not authorized to perform: ${action} on resource: ${resource} because ${d.reason}`,
      )
    }
  }

  async #audit(
    c: Caller,
    action: string,
    target: string,
    detail?: Record<string, unknown>,
  ): Promise<void> {
    const entry: AuditEntry = {
      at: Date.now(),
      who: c.principal.name,
      ...(c.principal.accessKeyId ? { accessKeyId: c.principal.accessKeyId } : {}),
      action,
      target,
      ...(detail !== undefined ? { detail } : {}),
      requestId: c.requestId,
      sourceIp: c.sourceIp,
    }
    this.#init.log.info({ audit: entry }, 'identity change')
    await this.#init.store.audit(entry)
  }

  #userArn(name: string): string {
    return arnOfUser(this.#snap.account.id, name)
  }

  #user(name: string): UserRecord {
    const u = this.#snap.users.get(name)
    if (u === undefined) {
      throw new IamError('NoSuchEntity', `The user with name ${name} cannot be found.`)
    }
    return u
  }

  /** The user an operation is about: the one named, else the caller's own. */
  #target(c: Caller, name: string | undefined): string {
    if (name !== undefined) return name
    if (c.principal.root) {
      throw new IamError(
        'ValidationError',
        'The root credential has no user of its own; name the user (UserName).',
      )
    }
    return c.principal.name
  }

  #checkName(name: string, re: RegExp, what: string): void {
    if (!re.test(name)) {
      throw new IamError(
        'ValidationError',
        `The specified value for ${what} is invalid. It must contain only alphanumeric characters and/or the following: +=,.@_-`,
      )
    }
  }

  #policyDoc(text: string, kind: 'identity' | 'session', what: string): string {
    const max = this.#snap.account.policyMaxBytes
    try {
      return parsePolicy(text, { kind, maxBytes: max }).text
    } catch (err) {
      if (err instanceof PolicyError) {
        if (err.tooLarge) {
          throw new IamError(
            kind === 'session' ? 'PackedPolicyTooLarge' : 'LimitExceeded',
            `Maximum policy size of ${max} bytes exceeded for ${what}.`,
          )
        }
        throw new IamError('MalformedPolicyDocument', err.reason)
      }
      throw err
    }
  }

  // ---- views --------------------------------------------------------------------------

  #userView(u: UserRecord): UserView {
    let serviceAccounts = 0
    for (const k of this.#snap.keys.values()) {
      if (k.user === u.name && k.kind === 'service-account') serviceAccounts++
    }
    return {
      name: u.name,
      id: u.id,
      arn: this.#userArn(u.name),
      kind: u.kind,
      created: u.created,
      roles: u.roles.map((r) => ({ ...r })),
      attached: [...u.attached],
      policies: Object.keys(u.policies).sort(),
      disabled: u.disabled === true,
      serviceAccounts,
      ...(u.email !== undefined ? { email: u.email } : {}),
    }
  }

  #keyView(k: AccessKeyRecord, lastUsed?: number): KeyView {
    const now = Date.now()
    const maxAgeDays = this.#snap.account.maxKeyAgeDays
    const rotationDue = k.kind === 'key' ? k.created + maxAgeDays * 86_400_000 : undefined
    const user = this.#snap.users.get(k.user)
    const state: KeyView['state'] =
      user?.disabled === true
        ? 'user-disabled'
        : k.status !== 'Active'
          ? 'inactive'
          : k.expires !== undefined && k.expires <= now
            ? 'expired'
            : rotationDue !== undefined && rotationDue < now
              ? 'too-old'
              : 'ok'
    return {
      id: k.id,
      kind: k.kind,
      user: k.user,
      project: k.project,
      status: k.status,
      created: k.created,
      ...(lastUsed !== undefined ? { lastUsed } : {}),
      ...(k.expires !== undefined ? { expires: k.expires } : {}),
      ageDays: Math.floor((now - k.created) / 86_400_000),
      ...(rotationDue !== undefined ? { rotationDue } : {}),
      state,
      ...(k.name !== undefined ? { name: k.name } : {}),
      ...(k.description !== undefined ? { description: k.description } : {}),
      hasPolicy: k.policy !== undefined,
    }
  }

  #policyView(name: string): PolicyView {
    const builtin = BUILTIN_POLICIES[name]
    const rec = this.#snap.policies.get(name)
    if (builtin === undefined && rec === undefined) {
      throw new IamError('NoSuchEntity', `Policy ${name} does not exist or is not attachable.`)
    }
    let attachmentCount = 0
    for (const u of this.#snap.users.values()) if (u.attached.includes(name)) attachmentCount++
    const id = `ANPA${createHash('sha256').update(`policy:${name}`).digest('hex').slice(0, 17).toUpperCase()}`
    if (builtin !== undefined) {
      return {
        name,
        arn: BUILTIN_ARN_PREFIX + name,
        id,
        document: builtin.document,
        builtin: true,
        description: builtin.description,
        created: 0,
        updated: 0,
        attachmentCount,
      }
    }
    return {
      name,
      arn: arnOfPolicy(this.#snap.account.id, name),
      id,
      document: rec!.document,
      builtin: false,
      ...(rec!.description !== undefined ? { description: rec!.description } : {}),
      created: rec!.created,
      updated: rec!.updated,
      attachmentCount,
    }
  }

  /** A managed policy's name from its ARN or name. */
  #policyName(arnOrName: string): string {
    if (arnOrName.startsWith(BUILTIN_ARN_PREFIX)) return arnOrName.slice(BUILTIN_ARN_PREFIX.length)
    const m = /^arn:aws:iam::(\d{12}):policy\/(.+)$/.exec(arnOrName)
    if (m) {
      if (m[1] !== this.#snap.account.id) {
        throw new IamError(
          'NoSuchEntity',
          `Policy ${arnOrName} does not exist or is not attachable.`,
        )
      }
      return m[2]!.slice(m[2]!.lastIndexOf('/') + 1)
    }
    if (arnOrName.startsWith('arn:'))
      throw new IamError('InvalidInput', `ARN ${arnOrName} is not valid.`)
    return arnOrName
  }

  // ---- users ---------------------------------------------------------------------------

  async createUser(
    c: Caller,
    init: { name: string; kind?: 'person' | 'service'; email?: string },
  ): Promise<UserView> {
    this.#checkName(init.name, USER_NAME, 'userName')
    this.#authorize(c, 'iam:CreateUser', this.#userArn(init.name))
    if (this.#snap.users.has(init.name) || init.name === 'root') {
      throw new IamError('EntityAlreadyExists', `User with name ${init.name} already exists.`)
    }
    const email = init.email === undefined ? undefined : this.#checkEmail(init.email, init.name)
    const user: UserRecord = {
      name: init.name,
      id: `AIDA${randomId(17)}`,
      kind: init.kind ?? 'person',
      created: Date.now(),
      roles: [],
      policies: {},
      attached: [],
      ...(email !== undefined ? { email } : {}),
    }
    await this.#init.store.put(`user/${user.name}`, user)
    await this.#audit(c, 'CreateUser', `user/${user.name}`, { kind: user.kind })
    return this.#userView(user)
  }

  async getUser(c: Caller, name?: string): Promise<UserView> {
    const target = this.#target(c, name)
    this.#authorize(c, 'iam:GetUser', this.#userArn(target), target)
    return this.#userView(this.#user(target))
  }

  async listUsers(c: Caller): Promise<UserView[]> {
    this.#authorize(c, 'iam:ListUsers', this.#userArn('*'))
    return [...this.#snap.users.values()]
      .sort((a, b) => (a.name < b.name ? -1 : 1))
      .map((u) => this.#userView(u))
  }

  async deleteUser(c: Caller, name: string): Promise<void> {
    this.#authorize(c, 'iam:DeleteUser', this.#userArn(name))
    this.#user(name)
    // Keys and service accounts go with their user (design §7): sessions of them end too.
    const owned = [...this.#snap.keys.values()].filter((k) => k.user === name)
    for (const k of owned) await this.#init.store.put(`key/${k.id}`, null)
    await this.#init.store.put(`user/${name}`, null)
    await this.#audit(c, 'DeleteUser', `user/${name}`, { removedKeys: owned.map((k) => k.id) })
  }

  async setUserEmail(c: Caller, name: string, email: string | undefined): Promise<UserView> {
    this.#authorize(c, 'iam:UpdateUser', this.#userArn(name))
    const u = structuredClone(this.#user(name))
    if (email === undefined) delete u.email
    else u.email = this.#checkEmail(email, name)
    await this.#init.store.put(`user/${name}`, u)
    await this.#audit(c, 'UpdateUser', `user/${name}`, { email: u.email ?? null })
    return this.#userView(u)
  }

  /** A well-formed address no other user has, in lower case. */
  #checkEmail(email: string, user: string): string {
    const e = email.trim().toLowerCase()
    if (e.length > 254 || !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(e)) {
      throw new IamError('InvalidInput', `${email} is not an e-mail address.`)
    }
    for (const other of this.#snap.users.values()) {
      if (other.email === e && other.name !== user) {
        throw new IamError(
          'EntityAlreadyExists',
          `User ${other.name} already has the e-mail address ${e}.`,
        )
      }
    }
    return e
  }

  async setUserDisabled(c: Caller, name: string, disabled: boolean): Promise<UserView> {
    this.#authorize(c, disabled ? 'admin:DisableUser' : 'admin:EnableUser', this.#userArn(name))
    const u = structuredClone(this.#user(name))
    if (disabled) u.disabled = true
    else delete u.disabled
    await this.#init.store.put(`user/${name}`, u)
    await this.#audit(c, disabled ? 'DisableUser' : 'EnableUser', `user/${name}`)
    return this.#userView(u)
  }

  // ---- access keys ----------------------------------------------------------------------

  /**
   * The project a new key or service account is bound to. Users issuing their own may only
   * pick a project they have a role in; owner and user-admin may issue for any project (the
   * IAM flow creates the key before roles are bound).
   */
  #keyProject(c: Caller, user: UserRecord, project: string | undefined): string {
    const p = project ?? c.principal.project ?? DEFAULT_PROJECT
    if (!this.#snap.projects.has(p)) {
      throw new IamError('NoSuchEntity', `The project ${p} cannot be found.`)
    }
    const self = !c.principal.root && c.principal.name === user.name
    if (self && !user.roles.some((b) => b.project === undefined || b.project === p)) {
      throw new IamError(
        'ValidationError',
        `User ${user.name} has no role in project ${p}; a key for it would be refused everywhere.`,
      )
    }
    return p
  }

  async createAccessKey(
    c: Caller,
    init: { user?: string; project?: string; expires?: number },
  ): Promise<NewKey> {
    const target = this.#target(c, init.user)
    this.#authorize(c, 'iam:CreateAccessKey', this.#userArn(target), target)
    const user = this.#user(target)
    const project = this.#keyProject(c, user, init.project)
    if (init.expires !== undefined && !(init.expires > Date.now())) {
      throw new IamError('ValidationError', 'The expiry of an access key must be in the future.')
    }
    const count = [...this.#snap.keys.values()].filter(
      (k) => k.user === target && k.kind === 'key',
    ).length
    if (count >= MAX_KEYS_PER_USER) {
      throw new IamError(
        'LimitExceeded',
        `Cannot exceed quota for AccessKeysPerUser: ${MAX_KEYS_PER_USER}`,
      )
    }
    const id = newAccessKeyId('key')
    const secret = newSecretAccessKey()
    const rec: AccessKeyRecord = {
      id,
      kind: 'key',
      user: target,
      project,
      created: Date.now(),
      status: 'Active',
      ...(init.expires !== undefined ? { expires: init.expires } : {}),
      secret: this.#init.sealer.seal(secret, `key:${id}`),
    }
    await this.#init.store.put(`key/${id}`, rec)
    await this.#audit(c, 'CreateAccessKey', `key/${id}`, {
      user: target,
      project,
      ...(init.expires !== undefined ? { expires: new Date(init.expires).toISOString() } : {}),
    })
    return { key: this.#keyView(rec), secretAccessKey: secret }
  }

  /** A key of the given kind, owned by `user` when one is named. */
  #key(id: string, kind: AccessKeyRecord['kind'], user?: string): AccessKeyRecord {
    const k = this.#snap.keys.get(id)
    if (k === undefined || k.kind !== kind || (user !== undefined && k.user !== user)) {
      throw new IamError(
        'NoSuchEntity',
        kind === 'key'
          ? `The Access Key with id ${id} cannot be found.`
          : `The service account ${id} cannot be found.`,
      )
    }
    return k
  }

  async listAccessKeys(c: Caller, user?: string): Promise<KeyView[]> {
    const target = this.#target(c, user)
    this.#authorize(c, 'iam:ListAccessKeys', this.#userArn(target), target)
    this.#user(target)
    const used = await this.#init.store.lastUsed()
    return [...this.#snap.keys.values()]
      .filter((k) => k.user === target && k.kind === 'key')
      .sort((a, b) => a.created - b.created)
      .map((k) => this.#keyView(k, used.get(k.id)))
  }

  async updateAccessKey(
    c: Caller,
    id: string,
    status: 'Active' | 'Inactive',
    user?: string,
  ): Promise<KeyView> {
    const owner = user ?? this.#snap.keys.get(id)?.user ?? this.#target(c, undefined)
    this.#authorize(c, 'iam:UpdateAccessKey', this.#userArn(owner), owner)
    const k = structuredClone(this.#key(id, 'key', owner))
    k.status = status
    await this.#init.store.put(`key/${id}`, k)
    await this.#audit(c, 'UpdateAccessKey', `key/${id}`, { user: owner, status })
    return this.#keyView(k)
  }

  async deleteAccessKey(c: Caller, id: string, user?: string): Promise<void> {
    const owner = user ?? this.#snap.keys.get(id)?.user ?? this.#target(c, undefined)
    this.#authorize(c, 'iam:DeleteAccessKey', this.#userArn(owner), owner)
    this.#key(id, 'key', owner)
    await this.#init.store.put(`key/${id}`, null)
    await this.#audit(c, 'DeleteAccessKey', `key/${id}`, { user: owner })
  }

  // ---- inline policies --------------------------------------------------------------------

  async putUserPolicy(c: Caller, user: string, name: string, document: string): Promise<void> {
    this.#checkName(name, POLICY_NAME, 'policyName')
    this.#authorize(c, 'iam:PutUserPolicy', this.#userArn(user))
    const u = structuredClone(this.#user(user))
    const doc = this.#policyDoc(document, 'identity', `user ${user}`)
    if (!(name in u.policies) && Object.keys(u.policies).length >= MAX_INLINE_POLICIES) {
      throw new IamError(
        'LimitExceeded',
        `Cannot exceed quota for PoliciesPerUser: ${MAX_INLINE_POLICIES}`,
      )
    }
    u.policies[name] = doc
    await this.#init.store.put(`user/${user}`, u)
    await this.#audit(c, 'PutUserPolicy', `user/${user}`, { policy: name })
  }

  async getUserPolicy(c: Caller, user: string, name: string): Promise<string> {
    this.#authorize(c, 'iam:GetUserPolicy', this.#userArn(user), user)
    const doc = this.#user(user).policies[name]
    if (doc === undefined) {
      throw new IamError('NoSuchEntity', `The user policy with name ${name} cannot be found.`)
    }
    return doc
  }

  async deleteUserPolicy(c: Caller, user: string, name: string): Promise<void> {
    this.#authorize(c, 'iam:DeleteUserPolicy', this.#userArn(user))
    const u = structuredClone(this.#user(user))
    if (!(name in u.policies)) {
      throw new IamError('NoSuchEntity', `The user policy with name ${name} cannot be found.`)
    }
    delete u.policies[name]
    await this.#init.store.put(`user/${user}`, u)
    await this.#audit(c, 'DeleteUserPolicy', `user/${user}`, { policy: name })
  }

  async listUserPolicies(c: Caller, user: string): Promise<string[]> {
    this.#authorize(c, 'iam:ListUserPolicies', this.#userArn(user), user)
    return Object.keys(this.#user(user).policies).sort()
  }

  // ---- managed policies -------------------------------------------------------------------

  async createPolicy(
    c: Caller,
    init: { name: string; document: string; description?: string },
  ): Promise<PolicyView> {
    this.#checkName(init.name, POLICY_NAME, 'policyName')
    this.#authorize(c, 'iam:CreatePolicy', arnOfPolicy(this.#snap.account.id, init.name))
    if (this.#snap.policies.has(init.name) || BUILTIN_POLICIES[init.name] !== undefined) {
      throw new IamError(
        'EntityAlreadyExists',
        `A policy called ${init.name} already exists. Duplicate names are not allowed.`,
      )
    }
    const now = Date.now()
    const rec: ManagedPolicyRecord = {
      name: init.name,
      document: this.#policyDoc(init.document, 'identity', `policy ${init.name}`),
      created: now,
      updated: now,
      ...(init.description !== undefined ? { description: init.description } : {}),
    }
    await this.#init.store.put(`policy/${init.name}`, rec)
    await this.#audit(c, 'CreatePolicy', `policy/${init.name}`)
    return this.#policyView(init.name)
  }

  async getPolicy(c: Caller, arnOrName: string): Promise<PolicyView> {
    const name = this.#policyName(arnOrName)
    this.#authorize(c, 'iam:GetPolicy', arnOfPolicy(this.#snap.account.id, name))
    return this.#policyView(name)
  }

  async listPolicies(c: Caller, scope: 'All' | 'AWS' | 'Local' = 'All'): Promise<PolicyView[]> {
    this.#authorize(c, 'iam:ListPolicies', arnOfPolicy(this.#snap.account.id, '*'))
    const names = [
      ...(scope !== 'Local' ? Object.keys(BUILTIN_POLICIES) : []),
      ...(scope !== 'AWS' ? [...this.#snap.policies.keys()] : []),
    ]
    return names.sort().map((n) => this.#policyView(n))
  }

  async deletePolicy(c: Caller, arnOrName: string): Promise<void> {
    const name = this.#policyName(arnOrName)
    this.#authorize(c, 'iam:DeletePolicy', arnOfPolicy(this.#snap.account.id, name))
    const view = this.#policyView(name)
    if (view.builtin)
      throw new IamError('InvalidInput', `The built-in policy ${name} cannot be deleted.`)
    if (view.attachmentCount > 0) {
      throw new IamError('DeleteConflict', 'Cannot delete a policy attached to entities.')
    }
    await this.#init.store.put(`policy/${name}`, null)
    await this.#audit(c, 'DeletePolicy', `policy/${name}`)
  }

  async attachUserPolicy(c: Caller, user: string, arnOrName: string): Promise<void> {
    const name = this.#policyName(arnOrName)
    this.#authorize(c, 'iam:AttachUserPolicy', this.#userArn(user))
    const u = structuredClone(this.#user(user))
    this.#policyView(name)
    if (u.attached.includes(name)) return
    if (u.attached.length >= MAX_ATTACHED_POLICIES) {
      throw new IamError(
        'LimitExceeded',
        `Cannot exceed quota for PoliciesPerUser: ${MAX_ATTACHED_POLICIES}`,
      )
    }
    u.attached.push(name)
    await this.#init.store.put(`user/${user}`, u)
    await this.#audit(c, 'AttachUserPolicy', `user/${user}`, { policy: name })
  }

  async detachUserPolicy(c: Caller, user: string, arnOrName: string): Promise<void> {
    const name = this.#policyName(arnOrName)
    this.#authorize(c, 'iam:DetachUserPolicy', this.#userArn(user))
    const u = structuredClone(this.#user(user))
    if (!u.attached.includes(name)) {
      throw new IamError('NoSuchEntity', `Policy ${arnOrName} was not found.`)
    }
    u.attached = u.attached.filter((n) => n !== name)
    await this.#init.store.put(`user/${user}`, u)
    await this.#audit(c, 'DetachUserPolicy', `user/${user}`, { policy: name })
  }

  async listAttachedUserPolicies(
    c: Caller,
    user: string,
  ): Promise<{ name: string; arn: string }[]> {
    this.#authorize(c, 'iam:ListAttachedUserPolicies', this.#userArn(user), user)
    return this.#user(user)
      .attached.filter((n) => BUILTIN_POLICIES[n] !== undefined || this.#snap.policies.has(n))
      .map((n) => ({ name: n, arn: this.#policyView(n).arn }))
  }

  // ---- projects and roles ----------------------------------------------------------------

  async #projectView(p: ProjectRecord, buckets?: BucketRecord[]): Promise<ProjectView> {
    const all = buckets ?? (await this.#init.listBuckets())
    let members = 0
    for (const u of this.#snap.users.values())
      if (u.roles.some((r) => r.project === p.name)) members++
    return {
      name: p.name,
      created: p.created,
      ...(p.description !== undefined ? { description: p.description } : {}),
      buckets: all.filter((b) => (b.project || DEFAULT_PROJECT) === p.name).length,
      members,
    }
  }

  async createProject(
    c: Caller,
    init: { name: string; description?: string },
  ): Promise<ProjectView> {
    if (!PROJECT_NAME.test(init.name)) {
      throw new IamError(
        'ValidationError',
        'A project name is 1 to 63 lower-case letters, digits and hyphens, starting with a letter or digit.',
      )
    }
    this.#authorize(
      c,
      'admin:CreateProject',
      `arn:aws:iam::${this.#snap.account.id}:project/${init.name}`,
    )
    if (this.#snap.projects.has(init.name)) {
      throw new IamError('EntityAlreadyExists', `Project ${init.name} already exists.`)
    }
    const rec: ProjectRecord = {
      name: init.name,
      created: Date.now(),
      ...(init.description !== undefined ? { description: init.description } : {}),
    }
    await this.#init.store.put(`project/${init.name}`, rec)
    await this.#audit(c, 'CreateProject', `project/${init.name}`)
    return this.#projectView(rec, [])
  }

  async listProjects(c: Caller): Promise<ProjectView[]> {
    this.#authorize(c, 'admin:ListProjects', `arn:aws:iam::${this.#snap.account.id}:project/*`)
    const buckets = await this.#init.listBuckets()
    const out: ProjectView[] = []
    for (const p of [...this.#snap.projects.values()].sort((a, b) => (a.name < b.name ? -1 : 1))) {
      out.push(await this.#projectView(p, buckets))
    }
    return out
  }

  async deleteProject(c: Caller, name: string): Promise<void> {
    this.#authorize(
      c,
      'admin:DeleteProject',
      `arn:aws:iam::${this.#snap.account.id}:project/${name}`,
    )
    const p = this.#snap.projects.get(name)
    if (p === undefined) throw new IamError('NoSuchEntity', `The project ${name} cannot be found.`)
    const view = await this.#projectView(p)
    if (view.buckets > 0) {
      throw new IamError(
        'DeleteConflict',
        `Project ${name} still has ${view.buckets} buckets; delete them first.`,
      )
    }
    // Its keys and role bindings go with it.
    for (const k of [...this.#snap.keys.values()]) {
      if (k.project === name) await this.#init.store.put(`key/${k.id}`, null)
    }
    for (const u of [...this.#snap.users.values()]) {
      if (u.roles.some((r) => r.project === name)) {
        await this.#init.store.put(`user/${u.name}`, {
          ...u,
          roles: u.roles.filter((r) => r.project !== name),
        })
      }
    }
    await this.#init.store.put(`project/${name}`, null)
    await this.#audit(c, 'DeleteProject', `project/${name}`)
  }

  #checkRole(role: Role, project: string | undefined): void {
    if ((ACCOUNT_ROLES as readonly string[]).includes(role)) {
      if (project !== undefined) {
        throw new IamError(
          'ValidationError',
          `${role} is an account-wide role; do not name a project.`,
        )
      }
      return
    }
    if (!(PROJECT_ROLES as readonly string[]).includes(role)) {
      throw new IamError(
        'ValidationError',
        `Unknown role ${role}; roles are ${[...ACCOUNT_ROLES, ...PROJECT_ROLES].join(', ')}.`,
      )
    }
    if (project === undefined)
      throw new IamError('ValidationError', `${role} is a project role; name the project.`)
    if (!this.#snap.projects.has(project)) {
      throw new IamError('NoSuchEntity', `The project ${project} cannot be found.`)
    }
  }

  /** Granting or taking the powerful account roles is the owner's alone (no self-promotion). */
  #checkRoleAuthority(c: Caller, role: Role): void {
    if (role !== 'owner' && role !== 'admin' && role !== 'user-admin') return
    const roles = c.principal.root ? [] : (this.#snap.users.get(c.principal.name)?.roles ?? [])
    if (c.principal.root || roles.some((r) => r.role === 'owner' && r.project === undefined)) return
    throw new IamError(
      'AccessDenied',
      `Only the account owner may grant or remove the ${role} role.`,
    )
  }

  async bindRole(c: Caller, user: string, role: Role, project?: string): Promise<UserView> {
    this.#authorize(c, 'admin:BindRole', this.#userArn(user))
    this.#checkRole(role, project)
    this.#checkRoleAuthority(c, role)
    const u = structuredClone(this.#user(user))
    if (!u.roles.some((r) => r.role === role && r.project === project)) {
      u.roles.push({ role, ...(project !== undefined ? { project } : {}) })
      await this.#init.store.put(`user/${user}`, u)
      await this.#audit(c, 'BindRole', `user/${user}`, { role, ...(project ? { project } : {}) })
    }
    return this.#userView(u)
  }

  async unbindRole(c: Caller, user: string, role: Role, project?: string): Promise<UserView> {
    this.#authorize(c, 'admin:UnbindRole', this.#userArn(user))
    this.#checkRoleAuthority(c, role)
    const u = structuredClone(this.#user(user))
    const before = u.roles.length
    u.roles = u.roles.filter((r) => !(r.role === role && r.project === project))
    if (u.roles.length === before) {
      throw new IamError(
        'NoSuchEntity',
        `User ${user} does not hold ${role}${project ? ` in ${project}` : ''}.`,
      )
    }
    await this.#init.store.put(`user/${user}`, u)
    await this.#audit(c, 'UnbindRole', `user/${user}`, { role, ...(project ? { project } : {}) })
    return this.#userView(u)
  }

  // ---- service accounts ----------------------------------------------------------------

  async createServiceAccount(
    c: Caller,
    init: { user?: string; project?: string; name?: string; description?: string; policy?: string },
  ): Promise<NewKey> {
    const target = this.#target(c, init.user)
    this.#authorize(c, 'admin:CreateServiceAccount', this.#userArn(target), target)
    const user = this.#user(target)
    const project = this.#keyProject(c, user, init.project)
    const count = [...this.#snap.keys.values()].filter(
      (k) => k.user === target && k.kind === 'service-account',
    ).length
    if (count >= MAX_SERVICE_ACCOUNTS_PER_USER) {
      throw new IamError(
        'LimitExceeded',
        `User ${target} already has ${MAX_SERVICE_ACCOUNTS_PER_USER} service accounts, the most allowed.`,
      )
    }
    const policy =
      init.policy !== undefined
        ? this.#policyDoc(init.policy, 'identity', 'the service account')
        : undefined
    const id = newAccessKeyId('service-account')
    const secret = newSecretAccessKey()
    const rec: AccessKeyRecord = {
      id,
      kind: 'service-account',
      user: target,
      project,
      created: Date.now(),
      status: 'Active',
      secret: this.#init.sealer.seal(secret, `key:${id}`),
      ...(init.name !== undefined ? { name: init.name } : {}),
      ...(init.description !== undefined ? { description: init.description } : {}),
      ...(policy !== undefined ? { policy } : {}),
    }
    await this.#init.store.put(`key/${id}`, rec)
    await this.#audit(c, 'CreateServiceAccount', `key/${id}`, {
      user: target,
      project,
      narrowed: policy !== undefined,
    })
    return { key: this.#keyView(rec), secretAccessKey: secret }
  }

  async listServiceAccounts(c: Caller, user?: string): Promise<KeyView[]> {
    const target = user ?? (c.principal.root ? undefined : c.principal.name)
    this.#authorize(c, 'admin:ListServiceAccounts', this.#userArn(target ?? '*'), target)
    const used = await this.#init.store.lastUsed()
    return [...this.#snap.keys.values()]
      .filter((k) => k.kind === 'service-account' && (target === undefined || k.user === target))
      .sort((a, b) => a.created - b.created)
      .map((k) => this.#keyView(k, used.get(k.id)))
  }

  async updateServiceAccount(
    c: Caller,
    id: string,
    change: { status?: 'Active' | 'Inactive'; policy?: string | null; description?: string },
  ): Promise<KeyView> {
    const owner = this.#snap.keys.get(id)?.user ?? ''
    this.#authorize(c, 'admin:UpdateServiceAccount', this.#userArn(owner), owner)
    const k = structuredClone(this.#key(id, 'service-account'))
    if (change.status !== undefined) k.status = change.status
    if (change.description !== undefined) k.description = change.description
    if (change.policy === null) delete k.policy
    else if (change.policy !== undefined) {
      k.policy = this.#policyDoc(change.policy, 'identity', 'the service account')
    }
    await this.#init.store.put(`key/${id}`, k)
    await this.#audit(c, 'UpdateServiceAccount', `key/${id}`, {
      ...(change.status !== undefined ? { status: change.status } : {}),
      ...(change.policy !== undefined
        ? { policy: change.policy === null ? 'removed' : 'set' }
        : {}),
    })
    return this.#keyView(k)
  }

  async getServiceAccountPolicy(c: Caller, id: string): Promise<string | undefined> {
    const owner = this.#snap.keys.get(id)?.user ?? ''
    this.#authorize(c, 'admin:GetServiceAccount', this.#userArn(owner), owner)
    return this.#key(id, 'service-account').policy
  }

  async deleteServiceAccount(c: Caller, id: string): Promise<void> {
    const owner = this.#snap.keys.get(id)?.user ?? ''
    this.#authorize(c, 'admin:DeleteServiceAccount', this.#userArn(owner), owner)
    this.#key(id, 'service-account')
    await this.#init.store.put(`key/${id}`, null)
    await this.#audit(c, 'DeleteServiceAccount', `key/${id}`, { user: owner })
  }

  // ---- account --------------------------------------------------------------------------

  #accountView(): AccountView {
    const a = this.#snap.account
    return {
      id: a.id,
      maxKeyAgeDays: a.maxKeyAgeDays,
      policyMaxBytes: a.policyMaxBytes,
      guardrails: structuredClone(a.guardrails),
    }
  }

  async getAccount(c: Caller): Promise<AccountView> {
    this.#authorize(c, 'admin:GetAccount', `arn:aws:iam::${this.#snap.account.id}:account`)
    return this.#accountView()
  }

  async updateAccount(
    c: Caller,
    change: { maxKeyAgeDays?: number; policyMaxBytes?: number; guardrails?: Guardrails },
  ): Promise<AccountView> {
    this.#authorize(c, 'admin:UpdateAccount', `arn:aws:iam::${this.#snap.account.id}:account`)
    const a = structuredClone(this.#snap.account)
    if (change.maxKeyAgeDays !== undefined) {
      a.maxKeyAgeDays = wholeNumberIn(change.maxKeyAgeDays, 1, 3650, 'maxKeyAgeDays (days)')
    }
    if (change.policyMaxBytes !== undefined) {
      a.policyMaxBytes = wholeNumberIn(change.policyMaxBytes, 256, 1_048_576, 'policyMaxBytes')
    }
    if (change.guardrails !== undefined) {
      const g = change.guardrails
      const lists = [g.deniedActions, ...(g.offeredActions !== undefined ? [g.offeredActions] : [])]
      for (const list of lists) {
        if (
          !Array.isArray(list) ||
          list.some((x) => typeof x !== 'string' || !GUARDRAIL_ACTION.test(x))
        ) {
          throw new IamError(
            'ValidationError',
            'Guardrails are lists of actions such as s3:DeleteObjectVersion (wildcards allowed).',
          )
        }
      }
      a.guardrails = {
        deniedActions: [...g.deniedActions],
        ...(g.offeredActions !== undefined ? { offeredActions: [...g.offeredActions] } : {}),
      }
    }
    await this.#init.store.put('account', a)
    await this.#audit(c, 'UpdateAccount', 'account', {
      ...(change.maxKeyAgeDays !== undefined ? { maxKeyAgeDays: a.maxKeyAgeDays } : {}),
      ...(change.policyMaxBytes !== undefined ? { policyMaxBytes: a.policyMaxBytes } : {}),
      ...(change.guardrails !== undefined ? { guardrails: a.guardrails } : {}),
    })
    return this.#accountView()
  }

  // ---- audit ----------------------------------------------------------------------------

  async listAudit(c: Caller, opts: { since?: number; limit?: number }): Promise<AuditEntry[]> {
    this.#authorize(c, 'admin:GetAuditLog', `arn:aws:iam::${this.#snap.account.id}:audit`)
    const limit = Math.min(Math.max(opts.limit ?? 1000, 1), 10_000)
    return this.#init.store.listAudit(opts.since ?? Date.now() - 7 * 86_400_000, limit)
  }

  /** Records a change made outside these operations (bucket policies) in the audit log. */
  async record(
    c: Caller,
    action: string,
    target: string,
    detail?: Record<string, unknown>,
  ): Promise<void> {
    await this.#audit(c, action, target, detail)
  }

  // ---- STS ------------------------------------------------------------------------------

  async assumeRole(
    c: Caller,
    init: { roleArn?: string; roleSessionName?: string; durationSeconds?: number; policy?: string },
  ): Promise<SessionCredentials> {
    const p = c.principal
    this.#authorize(c, 'sts:AssumeRole', init.roleArn ?? '*')
    const seconds = init.durationSeconds ?? DEFAULT_SESSION_SECONDS
    if (
      !Number.isInteger(seconds) ||
      seconds < MIN_SESSION_SECONDS ||
      seconds > MAX_SESSION_SECONDS
    ) {
      throw new IamError(
        'ValidationError',
        `1 validation error detected: Value '${seconds}' at 'durationSeconds' failed to satisfy constraint: Member must have value between ${MIN_SESSION_SECONDS} and ${MAX_SESSION_SECONDS}`,
      )
    }
    const policy =
      init.policy !== undefined ? this.#policyDoc(init.policy, 'session', 'the session') : undefined
    const name = init.roleSessionName ?? `session-${Date.now()}`
    const now = Date.now()
    const exp = now + seconds * 1000
    const id = newAccessKeyId('session')
    const secret = newSecretAccessKey()
    const roleName = /:role\/(?:.*\/)?([^/]+)$/.exec(init.roleArn ?? '')?.[1] ?? p.name
    const claims: SessionClaims = {
      rol: roleName,
      v: 1,
      kid: id,
      sec: secret,
      par: p.accessKeyId,
      usr: p.name,
      ...(p.project !== undefined ? { prj: p.project } : {}),
      exp,
      iat: now,
      ...(policy !== undefined ? { pol: policy } : {}),
      nm: name,
    }
    this.#init.log.info(
      {
        reqId: c.requestId,
        principal: p.arn || p.name,
        session: name,
        expires: new Date(exp).toISOString(),
      },
      'session issued',
    )
    return {
      accessKeyId: id,
      secretAccessKey: secret,
      sessionToken: this.#init.sealer.sealToken(claims),
      expiration: exp,
      assumedRoleArn: `arn:aws:sts::${this.#snap.account.id}:assumed-role/${roleName}/${name}`,
      assumedRoleId: `AROA${createHash('sha256').update(p.accessKeyId).digest('hex').slice(0, 17).toUpperCase()}:${name}`,
      ...(policy !== undefined
        ? {
            packedPolicySize: Math.ceil(
              (Buffer.byteLength(policy) * 100) / this.#snap.account.policyMaxBytes,
            ),
          }
        : {}),
    }
  }
}

/** `n` when it is a whole number in [min, max]; else the ValidationError that says so. */
function wholeNumberIn(n: number, min: number, max: number, what: string): number {
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new IamError('ValidationError', `${what} must be a whole number from ${min} to ${max}.`)
  }
  return n
}
