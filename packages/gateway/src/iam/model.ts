/**
 * The identity records of design §7, as they are stored on the nodes (system records under
 * `iam/`) and cached by every gateway. Secrets are stored sealed (AES-256-GCM under the
 * cluster master key), never in clear.
 */

/** Roles that apply to the whole account. */
export const ACCOUNT_ROLES = ['owner', 'admin', 'user-admin', 'reader'] as const
/** Roles that apply to one project. */
export const PROJECT_ROLES = ['project-admin', 'observer', 's3-admin', 's3-user'] as const
export type AccountRole = (typeof ACCOUNT_ROLES)[number]
export type ProjectRole = (typeof PROJECT_ROLES)[number]
export type Role = AccountRole | ProjectRole

/** A role held by a user; `project` is set exactly for the project roles. */
export interface RoleBinding {
  role: Role
  project?: string
}

/** The account: one per deployment. */
export interface AccountRecord {
  /** 12-digit account id used in ARNs (`arn:aws:iam::<id>:user/<name>`). */
  id: string
  /** Access keys older than this are refused (rotation); service accounts are exempt. */
  maxKeyAgeDays: number
  /** Largest policy document accepted, in bytes of its minified JSON. */
  policyMaxBytes: number
  guardrails: Guardrails
}

/** Deployment-wide limits that only the owner escapes. */
export interface Guardrails {
  /** Actions (wildcards allowed, e.g. `s3:DeleteObjectVersion`) denied to all but the owner. */
  deniedActions: string[]
  /** When set, the only S3 actions the deployment offers at all (wildcards allowed). */
  offeredActions?: string[]
}

export const DEFAULT_MAX_KEY_AGE_DAYS = 90
export const DEFAULT_POLICY_MAX_BYTES = 2048
/** Service accounts one user may have. */
export const MAX_SERVICE_ACCOUNTS_PER_USER = 100
/** The project that buckets created by the root credential go to. */
export const DEFAULT_PROJECT = 'default'

export interface ProjectRecord {
  name: string
  created: number
  description?: string
}

export interface UserRecord {
  name: string
  /** Stable unique id (`AIDA…`), aws:userid. */
  id: string
  /** People sign in; service users are programs. */
  kind: 'person' | 'service'
  created: number
  roles: RoleBinding[]
  /** Inline identity policies by name (JSON text as given). */
  policies: Record<string, string>
  /** Names of attached managed policies. */
  attached: string[]
  /** A disabled user's keys, service accounts and sessions are all refused. */
  disabled?: boolean
  /** E-mail address (lower case, unique): what S3 ACL grants by `emailAddress` resolve to. */
  email?: string
}

/** AES-256-GCM sealed bytes: base64 of iv (12) ‖ tag (16) ‖ ciphertext. */
export type Sealed = string

/**
 * An access key (kind 'key') or a service account (kind 'service-account'): both sign requests
 * with an id and a secret and are bound to one user and one project.
 */
export interface AccessKeyRecord {
  id: string
  kind: 'key' | 'service-account'
  /** The user the key belongs to (for a service account: its parent). */
  user: string
  project: string
  created: number
  status: 'Active' | 'Inactive'
  /** Epoch ms after which the key is refused (keys only). */
  expires?: number
  secret: Sealed
  /** Service accounts: a name and an optional narrowing policy (JSON text). */
  name?: string
  description?: string
  policy?: string
}

export interface ManagedPolicyRecord {
  name: string
  document: string
  created: number
  updated: number
  description?: string
  /** Built in (readonly, readwrite, writeonly, …): cannot be changed or deleted. */
  builtin?: boolean
}

/** One IAM change, for the audit log. Never holds a secret. */
export interface AuditEntry {
  at: number
  /** Who made the change (user name, or 'root'), and with which access key. */
  who: string
  accessKeyId?: string
  /** What was done, e.g. 'CreateUser', 'DeleteAccessKey', 'PutBucketPolicy'. */
  action: string
  /** What it was done to, e.g. 'user/alice', 'key/AKIA…', 'bucket/photos'. */
  target: string
  detail?: Record<string, unknown>
  requestId?: string
  sourceIp?: string
}

/** Everything a gateway caches: one consistent view of the identity records. */
export interface IamSnapshot {
  account: AccountRecord
  projects: Map<string, ProjectRecord>
  users: Map<string, UserRecord>
  keys: Map<string, AccessKeyRecord>
  policies: Map<string, ManagedPolicyRecord>
}

export function arnOfUser(accountId: string, user: string): string {
  return `arn:aws:iam::${accountId}:user/${user}`
}

export function arnOfPolicy(accountId: string, name: string): string {
  return `arn:aws:iam::${accountId}:policy/${name}`
}
