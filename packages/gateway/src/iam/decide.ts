/**
 * The access decision of design §7, as one pure function over the cached identity view.
 *
 *   1. authentication happened before (unknown, disabled, expired keys never get here);
 *   2. guardrails: a denied action stops here unless the caller is the owner; an action the
 *      deployment does not offer stops here for everyone;
 *   3. role gate: the key's project must be the bucket's, and some role must reach it;
 *   4. an explicit Deny in any policy that applies (identity, bucket, service account,
 *      session) stops here;
 *   5. allow: without a bucket policy, when the roles grant the action or an identity policy
 *      allows it; with one, only when it allows this principal (default deny) — except that
 *      owner, admin and the project's project-admin can always manage the bucket policy.
 *      With a public bucket policy and the bucket's RestrictPublicBuckets on, the policy's
 *      allow does not reach anonymous callers. In either case an ACL grant allows too, when
 *      the bucket's ACLs are in force (ownership other than BucketOwnerEnforced): the
 *      bucket's ACL for bucket actions and object writes, the object version's ACL for
 *      object reads and object ACL calls (see s3/acl.ts for which permission allows which
 *      action). AllUsers grants reach anonymous callers, AuthenticatedUsers grants every
 *      signed caller that passed step 3, and both are skipped under IgnorePublicAcls. ACLs
 *      never override steps 2–4: a denied guardrail, a failed role gate or an explicit Deny
 *      stand, and an ACL cannot grant anything an ACL has no permission for;
 *   6. service accounts and sessions: the parent's result, intersected with their own policy
 *      (an ACL's allow included).
 *
 * Every denial carries its reason, which the gateway logs with the request id. The root
 * credential of the gateway config is the break-glass owner: only step 2's "not offered"
 * applies to it.
 */

import { type AclInForce, aclAllows, isPublicPolicy } from '../s3/acl.ts'
import {
  BUCKET_POLICY_ACTIONS,
  BUILTIN_POLICIES,
  OWNER_ONLY,
  rolesFixBucketPolicy,
  rolesGrantIdentity,
  rolesGrantS3,
  rolesMayCreateBucket,
  rolesReachProject,
  SELF_SERVICE,
} from './actions.ts'
import type { IamSnapshot, RoleBinding, UserRecord } from './model.ts'
import type { Principal } from './operations.ts'
import {
  type EvalRequest,
  evaluatePolicy,
  matchWildcard,
  type Policy,
  parsePolicy,
} from './policy.ts'

export interface DecisionInput {
  /** Undefined for an anonymous request. */
  principal?: Principal
  action: string
  /** ARN of what the action touches ('arn:aws:s3:::b/k', 'arn:aws:iam::…:user/x', '*'). */
  resource: string
  /**
   * S3 actions on a bucket: the bucket's project and policy (JSON text), and whether its
   * public access block restricts public policies to the account (RestrictPublicBuckets).
   */
  bucket?: { name: string; project: string; policy?: string; restrictPublicBuckets?: boolean }
  /** The ACL that may grant the action (bucket or object ACL), when ACLs are in force. */
  acl?: AclInForce
  /** S3 actions without a bucket (ListAllMyBuckets, CreateBucket): the project they act in. */
  project?: string
  /** Identity actions: the user acted upon, for self-service. */
  targetUser?: string
  /** Condition keys of the request. */
  context: Record<string, string | string[] | undefined>
}

export interface Decision {
  allowed: boolean
  /** Why (for logs); for an allow, which rule allowed. */
  reason: string
}

const allow = (reason: string): Decision => ({ allowed: true, reason })
const deny = (reason: string): Decision => ({ allowed: false, reason })

/** Parsed policies by text, so the hot path never parses JSON. */
export class PolicyCache {
  #parsed = new Map<string, Policy>()

  get(text: string, kind: 'identity' | 'bucket' | 'session', bucket?: string): Policy {
    const key = `${kind}\0${bucket ?? ''}\0${text}`
    let p = this.#parsed.get(key)
    if (p === undefined) {
      // Stored policies were checked (and their size limited) when they were written.
      p = parsePolicy(text, {
        kind,
        maxBytes: Number.MAX_SAFE_INTEGER,
        ...(bucket !== undefined ? { bucket } : {}),
      })
      if (this.#parsed.size > 10_000) this.#parsed.clear()
      this.#parsed.set(key, p)
    }
    return p
  }
}

/** Principal ARNs a bucket policy's Principal can name this caller by. */
export function principalArns(p: Principal, accountId: string): string[] {
  const arns = [p.arn, accountId, `arn:aws:iam::${accountId}:root`]
  if (p.kind === 'session' || p.kind === 'service-account') {
    arns.push(`arn:aws:iam::${accountId}:user/${p.name}`)
  }
  return arns
}

export function decide(snap: IamSnapshot, input: DecisionInput, cache: PolicyCache): Decision {
  const { principal: p, action } = input
  const guard = snap.account.guardrails
  // 2. Guardrails. "Offered" applies to everyone, S3 actions only.
  if (
    guard.offeredActions !== undefined &&
    action.startsWith('s3:') &&
    !guard.offeredActions.some((a) => matchWildcard(a, action, true))
  ) {
    return deny(`guardrail: the deployment does not offer ${action}`)
  }
  if (p?.kind === 'session' && !action.startsWith('s3:') && action !== 'sts:GetCallerIdentity') {
    return deny('temporary credentials cannot manage identities or assume roles')
  }
  if (p?.root) {
    // The break-glass owner; a session of it is still narrowed by its session policy.
    if (p.sessionPolicy !== undefined) {
      const pol = cache.get(p.sessionPolicy, 'session')
      const d = evaluatePolicy(pol, { action, resource: input.resource, context: input.context })
      if (d.verdict !== 'Allow') return deny(`the session policy does not allow ${action}`)
    }
    return allow('root credential')
  }
  const user = p ? snap.users.get(p.name) : undefined
  const roles: readonly RoleBinding[] = user?.roles ?? []
  const isOwner = roles.some((b) => b.role === 'owner' && b.project === undefined)
  if (!isOwner && guard.deniedActions.some((a) => matchWildcard(a, action, true))) {
    return deny(`guardrail: ${action} is denied to all but the owner`)
  }
  if (p !== undefined && user === undefined) return deny(`user ${p.name} no longer exists`)

  if (!action.startsWith('s3:')) return decideIdentity(snap, input, cache, p, user)
  return decideS3(snap, input, cache, p, user, roles)
}

function identityPolicies(snap: IamSnapshot, user: UserRecord, cache: PolicyCache): Policy[] {
  const out: Policy[] = []
  for (const text of Object.values(user.policies)) out.push(cache.get(text, 'identity'))
  for (const name of user.attached) {
    const doc = snap.policies.get(name)?.document ?? BUILTIN_DOCS.get(name)
    if (doc !== undefined) out.push(cache.get(doc, 'identity'))
  }
  return out
}

/** The principal's own narrowing policies (service account, session) — step 6. */
function narrowing(p: Principal, cache: PolicyCache): { name: string; policy: Policy }[] {
  const out: { name: string; policy: Policy }[] = []
  if (p.servicePolicy !== undefined)
    out.push({ name: 'service account policy', policy: cache.get(p.servicePolicy, 'identity') })
  if (p.sessionPolicy !== undefined)
    out.push({ name: 'session policy', policy: cache.get(p.sessionPolicy, 'session') })
  return out
}

function decideIdentity(
  snap: IamSnapshot,
  input: DecisionInput,
  cache: PolicyCache,
  p: Principal | undefined,
  user: UserRecord | undefined,
): Decision {
  const { action } = input
  if (p === undefined || user === undefined)
    return deny('anonymous requests cannot manage identities')
  if (p.kind === 'session' && action !== 'sts:GetCallerIdentity') {
    return deny('temporary credentials cannot manage identities or assume roles')
  }
  if (action === 'sts:GetCallerIdentity') return allow('anyone may ask who they are')
  if (p.kind === 'service-account' && action === 'admin:CreateServiceAccount') {
    return deny('a service account cannot create service accounts')
  }
  const req: EvalRequest = { action, resource: input.resource, context: input.context }
  const ids = identityPolicies(snap, user, cache)
  const own = narrowing(p, cache)
  for (const pol of [...ids, ...own.map((o) => o.policy)]) {
    const d = evaluatePolicy(pol, req)
    if (d.verdict === 'Deny') return deny(`explicit deny (${d.statement ?? 'statement'})`)
  }
  let result: Decision | undefined
  if (rolesGrantIdentity(user.roles, action)) result = allow('role')
  else if (action === 'sts:AssumeRole') result = allow('any user may take a session of itself')
  else if (input.targetUser === p.name && SELF_SERVICE.has(action)) result = allow('self-service')
  else if (
    !OWNER_ONLY.has(action) &&
    ids.some((pol) => evaluatePolicy(pol, req).verdict === 'Allow')
  )
    result = allow('identity policy')
  if (result === undefined) return deny(`no role or policy grants ${action}`)
  for (const o of own) {
    if (evaluatePolicy(o.policy, req).verdict !== 'Allow')
      return deny(`the ${o.name} does not allow ${action}`)
  }
  return result
}

function decideS3(
  snap: IamSnapshot,
  input: DecisionInput,
  cache: PolicyCache,
  p: Principal | undefined,
  user: UserRecord | undefined,
  roles: readonly RoleBinding[],
): Decision {
  const { action, bucket } = input
  const project = bucket?.project ?? input.project
  // 3. Role gate.
  if (p !== undefined && project !== undefined) {
    if (p.project !== undefined && p.project !== project) {
      return deny(`the key is bound to project ${p.project}, the bucket is in project ${project}`)
    }
    if (!rolesReachProject(roles, project)) return deny(`no role reaches project ${project}`)
  }
  if (action === 's3:CreateBucket') {
    if (p === undefined) return deny('anonymous requests cannot create buckets')
    if (!rolesMayCreateBucket(roles, project ?? '')) {
      return deny(`only administrators of project ${project} may create buckets in it`)
    }
  }
  const req: EvalRequest = {
    action,
    resource: input.resource,
    context: input.context,
    ...(p !== undefined
      ? { principal: { arns: principalArns(p, snap.account.id), canonicalId: p.canonicalId } }
      : {}),
  }
  // 4. Explicit denies anywhere.
  const ids = user ? identityPolicies(snap, user, cache) : []
  const own = p ? narrowing(p, cache) : []
  const bucketPolicy =
    bucket?.policy !== undefined ? cache.get(bucket.policy, 'bucket', bucket.name) : undefined
  for (const pol of [
    ...ids,
    ...own.map((o) => o.policy),
    ...(bucketPolicy ? [bucketPolicy] : []),
  ]) {
    const d = evaluatePolicy(pol, req)
    if (d.verdict === 'Deny') return deny(`explicit deny (${d.statement ?? 'statement'})`)
  }
  // 5. Allow.
  let result: Decision | undefined
  const byAcl = () => input.acl !== undefined && aclAllows(input.acl, action, p?.canonicalId)
  if (bucketPolicy === undefined) {
    if (p === undefined) {
      if (byAcl()) return allow('ACL grant to everyone')
      return deny('anonymous access needs a bucket policy or an ACL that allows it')
    }
    if (project !== undefined && rolesGrantS3(roles, action, project)) result = allow('role')
    else if (project === undefined && roles.length > 0 && action === 's3:ListAllMyBuckets')
      result = allow('role')
    else if (ids.some((pol) => evaluatePolicy(pol, req).verdict === 'Allow'))
      result = allow('identity policy')
    else if (byAcl()) result = allow('ACL grant')
    if (result === undefined) return deny(`no role, identity policy or ACL grants ${action}`)
  } else {
    if (
      BUCKET_POLICY_ACTIONS.has(action) &&
      project !== undefined &&
      rolesFixBucketPolicy(roles, project)
    )
      result = allow('administrators can always manage the bucket policy')
    else if (
      evaluatePolicy(bucketPolicy, req).verdict === 'Allow' &&
      !(p === undefined && bucket?.restrictPublicBuckets === true && isPublicPolicy(bucketPolicy))
    )
      result = allow('bucket policy')
    else if (byAcl()) result = allow('ACL grant')
    if (result === undefined)
      return deny(
        p === undefined && bucket?.restrictPublicBuckets === true
          ? `the bucket restricts its public policy to the account (RestrictPublicBuckets)`
          : `neither the bucket policy nor an ACL allows ${action} to this principal`,
      )
  }
  // 6. Intersect with the service account's or session's own policy.
  for (const o of own) {
    if (evaluatePolicy(o.policy, req).verdict !== 'Allow')
      return deny(`the ${o.name} does not allow ${action}`)
  }
  return result
}

const BUILTIN_DOCS = new Map(Object.entries(BUILTIN_POLICIES).map(([k, v]) => [k, v.document]))
