/**
 * What a caller may do, for the web console to show only the controls that can work
 * (`GET /_tessera/admin/v1/whoami`, docs/admin-api.md). Each capability is the answer of the
 * same access decision that guards the real call (ClusterAccess.authorize for S3 actions,
 * Iam.authorizeAdmin for identity and cluster actions), asked for a representative resource:
 * `user/*` for user management, the caller's project for bucket creation, the named bucket
 * (and prefix) for object and settings actions. The answers are hints for the UI only; every
 * real call is still decided on its own, so a capability that says yes can still meet a
 * narrower policy (a Deny on one prefix) and a no is never a way around a check.
 */
import type { AccessControl } from '../auth/access.ts'
import type { Caller } from '../iam/operations.ts'

/** Account-level capabilities: identity and cluster actions, and buckets in the caller's project. */
export const ACCOUNT_CAPABILITIES = {
  listBuckets: { s3: 's3:ListAllMyBuckets' },
  createBucket: { s3: 's3:CreateBucket' },
  viewUsers: { iam: 'iam:ListUsers', what: 'user/*' },
  manageUsers: { iam: 'iam:CreateUser', what: 'user/*' },
  issueKeys: { iam: 'iam:CreateAccessKey', what: 'user/*' },
  bindRoles: { iam: 'admin:BindRole', what: 'user/*' },
  viewProjects: { iam: 'admin:ListProjects', what: 'project/*' },
  manageProjects: { iam: 'admin:CreateProject', what: 'project/*' },
  viewPolicies: { iam: 'iam:ListPolicies', what: 'policy/*' },
  managePolicies: { iam: 'iam:CreatePolicy', what: 'policy/*' },
  attachPolicies: { iam: 'iam:AttachUserPolicy', what: 'user/*' },
  viewAccount: { iam: 'admin:GetAccount', what: 'account' },
  manageAccount: { iam: 'admin:UpdateAccount', what: 'account' },
  viewAudit: { iam: 'admin:GetAuditLog', what: 'audit' },
  viewCluster: { iam: 'admin:GetClusterStatus', what: 'cluster' },
  viewHeal: { iam: 'admin:GetHealStatus', what: 'heal' },
  startHeal: { iam: 'admin:StartHeal', what: 'heal' },
} as const satisfies Record<string, { s3: string } | { iam: string; what: string }>

/** Bucket-level capabilities, asked for one bucket (and optionally a key prefix). */
export const BUCKET_CAPABILITIES = {
  list: { action: 's3:ListBucket' },
  listVersions: { action: 's3:ListBucketVersions' },
  read: { action: 's3:GetObject', object: true },
  readVersion: { action: 's3:GetObjectVersion', object: true },
  upload: { action: 's3:PutObject', object: true },
  delete: { action: 's3:DeleteObject', object: true },
  deleteVersion: { action: 's3:DeleteObjectVersion', object: true },
  readTags: { action: 's3:GetObjectTagging', object: true },
  writeTags: { action: 's3:PutObjectTagging', object: true },
  readVersioning: { action: 's3:GetBucketVersioning' },
  writeVersioning: { action: 's3:PutBucketVersioning' },
  readLifecycle: { action: 's3:GetLifecycleConfiguration' },
  writeLifecycle: { action: 's3:PutLifecycleConfiguration' },
  readPolicy: { action: 's3:GetBucketPolicy' },
  writePolicy: { action: 's3:PutBucketPolicy' },
  readCors: { action: 's3:GetBucketCORS' },
  writeCors: { action: 's3:PutBucketCORS' },
  readPublicAccessBlock: { action: 's3:GetBucketPublicAccessBlock' },
  writePublicAccessBlock: { action: 's3:PutBucketPublicAccessBlock' },
  readAcl: { action: 's3:GetBucketAcl' },
  deleteBucket: { action: 's3:DeleteBucket' },
} as const satisfies Record<string, { action: string; object?: true }>

export type AccountCapabilities = Record<keyof typeof ACCOUNT_CAPABILITIES, boolean> & {
  /** Keys and service accounts of one's own user (self-service; not for sessions or root). */
  issueOwnKeys: boolean
}
export type BucketCapabilities = Record<keyof typeof BUCKET_CAPABILITIES, boolean>

export interface CapabilitiesInit {
  access: AccessControl
  /** Throws when the caller may not do `action` on `arn:aws:iam::<account>:<what>`. */
  /** Decides without logging a denial: these are probes, not requests. */
  authorizeAdmin(c: Caller, action: string, what: string): void
  /** The account's policy size limit (bytes of minified JSON), which the console checks too. */
  policyMaxBytes(): number
}

/** Computes capabilities with the gateway's real access decisions. */
export class Capabilities {
  #init: CapabilitiesInit

  constructor(init: CapabilitiesInit) {
    this.#init = init
  }

  async account(c: Caller): Promise<AccountCapabilities> {
    const out: Record<string, boolean> = {}
    for (const [name, probe] of Object.entries(ACCOUNT_CAPABILITIES)) {
      out[name] = 's3' in probe ? await this.#s3(c, probe.s3) : this.#iam(c, probe.iam, probe.what)
    }
    const p = c.principal
    out.issueOwnKeys = !p.root && p.kind !== 'session'
    return out as AccountCapabilities
  }

  /** Limits a client checks before sending; not secret, so anyone signed in may read them. */
  limits(): { policyMaxBytes: number } {
    return { policyMaxBytes: this.#init.policyMaxBytes() }
  }

  async bucket(c: Caller, bucket: string, prefix = ''): Promise<BucketCapabilities> {
    const out: Record<string, boolean> = {}
    for (const [name, probe] of Object.entries(BUCKET_CAPABILITIES)) {
      // Object actions are asked for every key under the prefix, as `<prefix>*`.
      const key = 'object' in probe ? `${prefix}*` : undefined
      out[name] = await this.#s3(c, probe.action, bucket, key)
    }
    return out as BucketCapabilities
  }

  async #s3(c: Caller, action: string, bucket?: string, key?: string): Promise<boolean> {
    try {
      await this.#init.access.authorize(
        { principal: c.principal },
        {
          action,
          probe: true,
          ...(bucket !== undefined ? { bucket } : {}),
          ...(key !== undefined ? { key } : {}),
          request: {
            requestId: c.requestId,
            sourceIp: c.sourceIp,
            secure: c.secure,
            headers: {},
            params: new URLSearchParams(),
          },
        },
      )
      return true
    } catch {
      return false
    }
  }

  #iam(c: Caller, action: string, what: string): boolean {
    try {
      this.#init.authorizeAdmin(c, action, what)
      return true
    } catch {
      return false
    }
  }
}
