/**
 * What each role grants, the identity actions, and the built-in managed policies.
 *
 * S3 actions are named as AWS names them (`s3:GetObject`, …). Identity operations are `iam:`
 * actions where AWS IAM has a word for them and `admin:` actions for the rest (projects,
 * roles, service accounts, guardrails, audit), so policies can grant or deny them too.
 */
import type { RoleBinding } from './model.ts'

/** Reading S3 never changes anything: Get*, List*, plus HEAD which maps onto them. */
export function isS3Read(action: string): boolean {
  return /^s3:(Get|List)/.test(action)
}

/** Identity actions that only read. */
export const IDENTITY_READ = new Set([
  'iam:GetUser',
  'iam:ListUsers',
  'iam:ListAccessKeys',
  'iam:GetUserPolicy',
  'iam:ListUserPolicies',
  'iam:GetPolicy',
  'iam:GetPolicyVersion',
  'iam:ListPolicies',
  'iam:ListAttachedUserPolicies',
  'admin:ListProjects',
  'admin:GetAccount',
  'admin:GetAuditLog',
  'admin:ListServiceAccounts',
  'admin:GetServiceAccount',
])

/**
 * Reading the cluster's state: `reader` sees it (it sees everything), `user-admin` does not
 * (design §7: users and keys only).
 */
export const CLUSTER_READ = new Set(['admin:GetClusterStatus', 'admin:GetHealStatus'])

/** User management: what `user-admin` may do and `admin` may not. */
export const USER_MANAGEMENT = new Set([
  'iam:CreateUser',
  'iam:UpdateUser',
  'iam:DeleteUser',
  'iam:CreateAccessKey',
  'iam:UpdateAccessKey',
  'iam:DeleteAccessKey',
  'iam:PutUserPolicy',
  'iam:DeleteUserPolicy',
  'iam:AttachUserPolicy',
  'iam:DetachUserPolicy',
  'admin:BindRole',
  'admin:UnbindRole',
  'admin:DisableUser',
  'admin:EnableUser',
  'admin:CreateServiceAccount',
  'admin:UpdateServiceAccount',
  'admin:DeleteServiceAccount',
])

/** Account administration other than users: `admin` and `owner`. */
export const ACCOUNT_ADMIN = new Set([
  'iam:CreatePolicy',
  'iam:DeletePolicy',
  'admin:CreateProject',
  'admin:DeleteProject',
])

/** Only the owner changes account settings (key age, policy size, guardrails). */
export const OWNER_ONLY = new Set(['admin:UpdateAccount'])

/** Actions a principal may do on its own user without any role: its keys and children. */
export const SELF_SERVICE = new Set([
  'iam:GetUser',
  'iam:CreateAccessKey',
  'iam:ListAccessKeys',
  'iam:UpdateAccessKey',
  'iam:DeleteAccessKey',
  'iam:ListUserPolicies',
  'iam:GetUserPolicy',
  'iam:ListAttachedUserPolicies',
  'admin:CreateServiceAccount',
  'admin:ListServiceAccounts',
  'admin:GetServiceAccount',
  'admin:UpdateServiceAccount',
  'admin:DeleteServiceAccount',
])

/** Bucket-policy actions the account and project administrators can always do (§7 step 5). */
export const BUCKET_POLICY_ACTIONS = new Set([
  's3:GetBucketPolicy',
  's3:PutBucketPolicy',
  's3:DeleteBucketPolicy',
  's3:GetBucketPolicyStatus',
])

/** Whether the roles alone grant an identity (iam:/admin:/sts:) action. */
export function rolesGrantIdentity(roles: readonly RoleBinding[], action: string): boolean {
  for (const { role, project } of roles) {
    if (project !== undefined) continue
    switch (role) {
      case 'owner':
        return true
      case 'admin':
        if (!USER_MANAGEMENT.has(action) && !OWNER_ONLY.has(action)) return true
        break
      case 'user-admin':
        if (USER_MANAGEMENT.has(action) || IDENTITY_READ.has(action)) return true
        break
      case 'reader':
        if (IDENTITY_READ.has(action) || CLUSTER_READ.has(action)) return true
        break
    }
  }
  return false
}

/** Whether some role reaches project `p` at all (the role gate of §7 step 3). */
export function rolesReachProject(roles: readonly RoleBinding[], p: string): boolean {
  return roles.some((b) =>
    b.project === undefined
      ? b.role === 'owner' || b.role === 'admin' || b.role === 'reader'
      : b.project === p,
  )
}

/** Whether the roles alone grant an S3 action in project `p`. */
export function rolesGrantS3(roles: readonly RoleBinding[], action: string, p: string): boolean {
  const read = isS3Read(action)
  for (const { role, project } of roles) {
    if (project === undefined) {
      if (role === 'owner' || role === 'admin') return true
      if (role === 'reader' && read) return true
      continue
    }
    if (project !== p) continue
    if (role === 'project-admin' || role === 's3-admin') return true
    if (role === 'observer' && read) return true
  }
  return false
}

/** The roles that may create buckets in project `p` (users cannot outside what they administer). */
export function rolesMayCreateBucket(roles: readonly RoleBinding[], p: string): boolean {
  return roles.some((b) =>
    b.project === undefined
      ? b.role === 'owner' || b.role === 'admin'
      : b.project === p && (b.role === 'project-admin' || b.role === 's3-admin'),
  )
}

/** Whether the roles may always manage bucket policies in project `p` (no lock-out). */
export function rolesFixBucketPolicy(roles: readonly RoleBinding[], p: string): boolean {
  return roles.some((b) =>
    b.project === undefined
      ? b.role === 'owner' || b.role === 'admin'
      : b.project === p && b.role === 'project-admin',
  )
}

const policy = (statements: object[]) =>
  JSON.stringify({ Version: '2012-10-17', Statement: statements })

/** Predefined managed policies: always present, never changed or deleted. */
export const BUILTIN_POLICIES: Record<string, { document: string; description: string }> = {
  readonly: {
    description: 'Read every object and listing the principal can reach',
    document: policy([
      {
        Effect: 'Allow',
        Action: [
          's3:GetBucketLocation',
          's3:GetObject',
          's3:GetObjectVersion',
          's3:ListBucket',
          's3:ListBucketVersions',
          's3:ListAllMyBuckets',
          's3:GetObjectTagging',
          's3:GetObjectVersionTagging',
        ],
        Resource: ['arn:aws:s3:::*'],
      },
    ]),
  },
  readwrite: {
    description: 'Read, write and delete every object the principal can reach',
    document: policy([{ Effect: 'Allow', Action: ['s3:*'], Resource: ['arn:aws:s3:::*'] }]),
  },
  writeonly: {
    description: 'Upload objects, without reading or listing them',
    document: policy([
      {
        Effect: 'Allow',
        Action: [
          's3:PutObject',
          's3:AbortMultipartUpload',
          's3:ListMultipartUploadParts',
          's3:PutObjectTagging',
        ],
        Resource: ['arn:aws:s3:::*'],
      },
    ]),
  },
  listonly: {
    description: 'List buckets and keys, without reading objects',
    document: policy([
      {
        Effect: 'Allow',
        Action: [
          's3:ListAllMyBuckets',
          's3:ListBucket',
          's3:ListBucketVersions',
          's3:GetBucketLocation',
        ],
        Resource: ['arn:aws:s3:::*'],
      },
    ]),
  },
  deleteonly: {
    description: 'Delete objects and versions, without reading them',
    document: policy([
      {
        Effect: 'Allow',
        Action: ['s3:DeleteObject', 's3:DeleteObjectVersion', 's3:ListBucket'],
        Resource: ['arn:aws:s3:::*'],
      },
    ]),
  },
  'bucket-admin': {
    description: 'Change bucket settings (versioning, tagging, policy, lifecycle), no object data',
    document: policy([
      {
        Effect: 'Allow',
        Action: [
          's3:CreateBucket',
          's3:DeleteBucket',
          's3:PutBucket*',
          's3:GetBucket*',
          's3:DeleteBucket*',
          's3:PutLifecycleConfiguration',
          's3:GetLifecycleConfiguration',
          's3:ListAllMyBuckets',
        ],
        Resource: ['arn:aws:s3:::*'],
      },
    ]),
  },
}
