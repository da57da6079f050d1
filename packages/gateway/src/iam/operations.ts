/**
 * The identity operations behind every interface that manages identities: the IAM query API,
 * STS, the admin API and the CLI over it. Each operation takes the caller, authorizes it by
 * design §7 and records it in the audit log; failures are `IamError`s whose codes are the
 * AWS IAM codes, so the IAM API answers them as AWS does and the admin API as JSON.
 */
import type { AccessKeyRecord, AuditEntry, Guardrails, Role, RoleBinding } from './model.ts'

/** Who is calling, as authentication found it. */
export interface Principal {
  /** 'root' is the deployment's root credential from the gateway config (the account owner). */
  kind: 'root' | 'user' | 'service-account' | 'session'
  /** The access key id that signed the request. */
  accessKeyId: string
  /** The user (for service accounts and sessions: the parent user); 'root' for root. */
  name: string
  /** aws:userid. */
  userId: string
  /** The ARN policies name this principal by. */
  arn: string
  /** S3 canonical user id (64 hex), shown as Owner ID. */
  canonicalId: string
  displayName: string
  /** The project the key is bound to; undefined for root, which reaches every project. */
  project?: string
  /** True for the root credential. */
  root: boolean
  /** Session only: when the credentials expire (epoch ms), and the session's policy. */
  expires?: number
  sessionPolicy?: string
  sessionName?: string
  /** Service account only: its narrowing policy. */
  servicePolicy?: string
}

/** A caller of an identity operation. */
export interface Caller {
  principal: Principal
  requestId: string
  sourceIp: string
  /** True when the request came over TLS (aws:SecureTransport). */
  secure: boolean
}

export type IamErrorCode =
  | 'NoSuchEntity'
  | 'EntityAlreadyExists'
  | 'LimitExceeded'
  | 'MalformedPolicyDocument'
  | 'InvalidInput'
  | 'ValidationError'
  | 'AccessDenied'
  | 'DeleteConflict'
  | 'ServiceFailure'
  | 'InvalidClientTokenId'
  | 'ExpiredToken'
  | 'PackedPolicyTooLarge'
  | 'InvalidAction'
  | 'MissingAction'

/** HTTP status AWS answers each IAM/STS error code with. */
export const IAM_ERROR_STATUS: Record<IamErrorCode, number> = {
  NoSuchEntity: 404,
  EntityAlreadyExists: 409,
  LimitExceeded: 409,
  MalformedPolicyDocument: 400,
  InvalidInput: 400,
  ValidationError: 400,
  AccessDenied: 403,
  DeleteConflict: 409,
  ServiceFailure: 500,
  InvalidClientTokenId: 403,
  ExpiredToken: 400,
  PackedPolicyTooLarge: 400,
  InvalidAction: 400,
  MissingAction: 400,
}

export class IamError extends Error {
  static override name = 'IamError'
  readonly code: IamErrorCode
  readonly status: number
  constructor(code: IamErrorCode, message: string) {
    super(message)
    this.name = 'IamError'
    this.code = code
    this.status = IAM_ERROR_STATUS[code]
  }
}

export interface UserView {
  name: string
  id: string
  arn: string
  kind: 'person' | 'service'
  created: number
  roles: RoleBinding[]
  /** Names of attached managed policies. */
  attached: string[]
  /** Names of inline policies. */
  policies: string[]
  disabled: boolean
  serviceAccounts: number
  email?: string
}

export interface KeyView {
  id: string
  kind: AccessKeyRecord['kind']
  user: string
  project: string
  status: 'Active' | 'Inactive'
  created: number
  lastUsed?: number
  expires?: number
  /** Days since creation (whole days). */
  ageDays: number
  /** When rotation makes this key unusable (epoch ms); undefined for service accounts. */
  rotationDue?: number
  /** 'ok', or why the key is refused now. */
  state: 'ok' | 'inactive' | 'expired' | 'too-old' | 'user-disabled'
  name?: string
  description?: string
  hasPolicy: boolean
}

/** A new key: the only time its secret is shown. */
export interface NewKey {
  key: KeyView
  secretAccessKey: string
}

export interface PolicyView {
  name: string
  arn: string
  /** Stable id (ANPA…). */
  id: string
  document: string
  builtin: boolean
  description?: string
  created: number
  updated: number
  attachmentCount: number
}

export interface ProjectView {
  name: string
  created: number
  description?: string
  buckets: number
  members: number
}

export interface AccountView {
  id: string
  maxKeyAgeDays: number
  policyMaxBytes: number
  guardrails: Guardrails
}

export interface SessionCredentials {
  accessKeyId: string
  secretAccessKey: string
  sessionToken: string
  /** Epoch ms. */
  expiration: number
  assumedRoleArn: string
  assumedRoleId: string
  /** Size of the session policy relative to the limit, in percent (STS PackedPolicySize). */
  packedPolicySize?: number
}

export interface IamOperations {
  // Users --------------------------------------------------------------------------------
  createUser(
    c: Caller,
    init: { name: string; kind?: 'person' | 'service'; email?: string },
  ): Promise<UserView>
  /** Sets (or, with undefined, removes) a user's e-mail address: ACL grants by e-mail find it. */
  setUserEmail(c: Caller, name: string, email: string | undefined): Promise<UserView>
  /** Without a name: the caller's own user. */
  getUser(c: Caller, name?: string): Promise<UserView>
  listUsers(c: Caller): Promise<UserView[]>
  /** Removes the user with its keys, service accounts and sessions. */
  deleteUser(c: Caller, name: string): Promise<void>
  setUserDisabled(c: Caller, name: string, disabled: boolean): Promise<UserView>

  // Access keys ----------------------------------------------------------------------------
  /** user defaults to the caller; project to the caller's key's project (root: 'default'). */
  createAccessKey(
    c: Caller,
    init: { user?: string; project?: string; expires?: number },
  ): Promise<NewKey>
  listAccessKeys(c: Caller, user?: string): Promise<KeyView[]>
  updateAccessKey(
    c: Caller,
    id: string,
    status: 'Active' | 'Inactive',
    user?: string,
  ): Promise<KeyView>
  deleteAccessKey(c: Caller, id: string, user?: string): Promise<void>

  // Inline user policies -----------------------------------------------------------------
  putUserPolicy(c: Caller, user: string, name: string, document: string): Promise<void>
  getUserPolicy(c: Caller, user: string, name: string): Promise<string>
  deleteUserPolicy(c: Caller, user: string, name: string): Promise<void>
  listUserPolicies(c: Caller, user: string): Promise<string[]>

  // Managed policies ---------------------------------------------------------------------
  createPolicy(
    c: Caller,
    init: { name: string; document: string; description?: string },
  ): Promise<PolicyView>
  /** By ARN or by name. */
  getPolicy(c: Caller, arnOrName: string): Promise<PolicyView>
  /** scope 'AWS' = the built-in ones, 'Local' = custom, 'All' (default) = both. */
  listPolicies(c: Caller, scope?: 'All' | 'AWS' | 'Local'): Promise<PolicyView[]>
  deletePolicy(c: Caller, arnOrName: string): Promise<void>
  attachUserPolicy(c: Caller, user: string, arnOrName: string): Promise<void>
  detachUserPolicy(c: Caller, user: string, arnOrName: string): Promise<void>
  listAttachedUserPolicies(c: Caller, user: string): Promise<{ name: string; arn: string }[]>

  // Projects and roles -------------------------------------------------------------------
  createProject(c: Caller, init: { name: string; description?: string }): Promise<ProjectView>
  listProjects(c: Caller): Promise<ProjectView[]>
  /** Refused (DeleteConflict) while the project has buckets. */
  deleteProject(c: Caller, name: string): Promise<void>
  bindRole(c: Caller, user: string, role: Role, project?: string): Promise<UserView>
  unbindRole(c: Caller, user: string, role: Role, project?: string): Promise<UserView>

  // Service accounts ---------------------------------------------------------------------
  createServiceAccount(
    c: Caller,
    init: { user?: string; project?: string; name?: string; description?: string; policy?: string },
  ): Promise<NewKey>
  listServiceAccounts(c: Caller, user?: string): Promise<KeyView[]>
  /** policy null removes the narrowing policy. */
  updateServiceAccount(
    c: Caller,
    id: string,
    change: { status?: 'Active' | 'Inactive'; policy?: string | null; description?: string },
  ): Promise<KeyView>
  getServiceAccountPolicy(c: Caller, id: string): Promise<string | undefined>
  deleteServiceAccount(c: Caller, id: string): Promise<void>

  // Account settings ---------------------------------------------------------------------
  getAccount(c: Caller): Promise<AccountView>
  updateAccount(
    c: Caller,
    change: { maxKeyAgeDays?: number; policyMaxBytes?: number; guardrails?: Guardrails },
  ): Promise<AccountView>

  // Audit --------------------------------------------------------------------------------
  /** IAM changes, oldest first, after `since` (epoch ms). */
  listAudit(c: Caller, opts: { since?: number; limit?: number }): Promise<AuditEntry[]>

  // STS ----------------------------------------------------------------------------------
  assumeRole(
    c: Caller,
    init: {
      roleArn?: string
      roleSessionName?: string
      durationSeconds?: number
      policy?: string
    },
  ): Promise<SessionCredentials>
}
