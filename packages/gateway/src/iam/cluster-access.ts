/**
 * Authentication and authorization against the cluster's identities (design §7).
 *
 * Authentication finds the secret of the signing key — the root credential from the config,
 * an access key or service account from the cached records (opened with the master key), or
 * the secret carried inside a session token — and lets SigV4 verify the request with it. Only
 * after the signature holds are the key's state, expiry and age checked, so someone without
 * the secret learns nothing about a key. Session tokens are verified without a store lookup
 * beyond their parent key and user, which the cache holds, so deleting or disabling the
 * parent ends its sessions within the cache's refresh time.
 *
 * Failed authentications are counted per source address and per key id; past the limits the
 * gateway answers SlowDown until the window passes.
 */
import type { AclOwner, BucketRecord } from '@tessera/protocol'
import {
  type AccessControl,
  type AccessRequest,
  type Authenticated,
  canonicalIdOf,
  type PostPolicyCredentials,
} from '../auth/access.ts'
import {
  authKind,
  postPolicySignature,
  type SignedRequest,
  signaturesEqual,
  verifySigV4,
} from '../auth/sigv4.ts'
import { ACL_ACTIONS, bucketAclInForce, publicAccessBlockOf } from '../s3/acl.ts'
import type { Logger } from '../s3/context.ts'
import { S3Error } from '../s3/errors.ts'
import { equalsConstantTime, type Sealer } from './crypto.ts'
import { type DecisionInput, decide, PolicyCache } from './decide.ts'
import { type AccessKeyRecord, arnOfUser, DEFAULT_PROJECT, type IamSnapshot } from './model.ts'
import type { Principal } from './operations.ts'
import type { IamStore } from './store.ts'

/** What a session token carries (sealed; only gateways with the master key read it). */
export interface SessionClaims {
  v: 1
  /** The session's access key id and secret. */
  kid: string
  sec: string
  /** The access key that assumed the session (root's id for root). */
  par: string
  /** User name and project of the parent. */
  usr: string
  prj?: string
  /** Expiry, epoch ms. */
  exp: number
  iat: number
  pol?: string
  nm: string
  /** Role name shown in the session's ARN. */
  rol: string
}

export interface AuthLimits {
  /** Failed authentications allowed per source address per window. */
  perAddress: number
  /** Failed authentications allowed per access key id per window. */
  perKey: number
  windowMs: number
}

export const DEFAULT_AUTH_LIMITS: AuthLimits = { perAddress: 100, perKey: 20, windowMs: 60_000 }

export interface ClusterAccessInit {
  store: IamStore
  sealer: Sealer
  root: { accessKeyId: string; secretAccessKey: string }
  region: string
  log: Logger
  limits?: AuthLimits
  maxSkewMs?: number
  /** A bucket's record (cached), for requests that name a bucket without passing its record. */
  bucketOf(name: string): Promise<BucketRecord | undefined>
}

/** Sliding-window counters of failed authentications. */
class FailureCounter {
  #hits = new Map<string, number[]>()
  readonly limit: number
  readonly windowMs: number
  constructor(limit: number, windowMs: number) {
    this.limit = limit
    this.windowMs = windowMs
  }

  #live(k: string, now: number): number[] {
    const list = (this.#hits.get(k) ?? []).filter((t) => now - t < this.windowMs)
    if (list.length === 0) this.#hits.delete(k)
    else this.#hits.set(k, list)
    return list
  }

  /** Ms until `k` may try again, or 0. */
  blockedFor(k: string, now: number): number {
    const list = this.#live(k, now)
    return list.length >= this.limit ? this.windowMs - (now - list[0]!) : 0
  }

  fail(k: string, now: number): void {
    const list = this.#live(k, now)
    list.push(now)
    this.#hits.set(k, list)
    if (this.#hits.size > 100_000) this.#hits.delete(this.#hits.keys().next().value!)
  }
}

const AUTH_FAILURES = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'InvalidToken',
  'ExpiredToken',
])

export class ClusterAccess implements AccessControl {
  #init: ClusterAccessInit
  #policies = new PolicyCache()
  #canonical: { snap: IamSnapshot; byId: Map<string, AclOwner> } | undefined
  #accountOwner: AclOwner | undefined
  #secrets = new Map<string, { sealed: string; secret: string }>()
  #byAddress: FailureCounter
  #byKey: FailureCounter

  constructor(init: ClusterAccessInit) {
    this.#init = init
    const limits = init.limits ?? DEFAULT_AUTH_LIMITS
    this.#byAddress = new FailureCounter(limits.perAddress, limits.windowMs)
    this.#byKey = new FailureCounter(limits.perKey, limits.windowMs)
    init.store.onChange(() => {
      this.#secrets.clear()
      this.#canonical = undefined
    })
  }

  /** The root credential's principal: the account itself. */
  get #rootPrincipal(): Principal {
    return {
      kind: 'root',
      accessKeyId: this.#init.root.accessKeyId,
      name: 'root',
      userId: this.#snap.account.id,
      arn: `arn:aws:iam::${this.#snap.account.id}:root`,
      canonicalId: canonicalIdOf(this.#init.root.accessKeyId),
      displayName: 'root',
      root: true,
    }
  }

  get policies(): PolicyCache {
    return this.#policies
  }

  get #snap(): IamSnapshot {
    return this.#init.store.snapshot
  }

  async authenticate(
    req: SignedRequest,
    sourceIp: string,
    bodySha256?: string,
  ): Promise<Authenticated> {
    if (authKind(req) === 'none') return {}
    const now = Date.now()
    const wait = this.#byAddress.blockedFor(sourceIp, now)
    if (wait > 0) throw slowDown(wait)
    let keyId: string | undefined
    let session: SessionClaims | undefined
    let record: AccessKeyRecord | undefined
    try {
      const auth = await verifySigV4(req, {
        lookupSecret: async (id: string) => {
          keyId = id
          const w = this.#byKey.blockedFor(id, now)
          if (w > 0) throw slowDown(w)
          return this.#secretOf(
            id,
            req,
            (c) => (session = c),
            (r) => (record = r),
          )
        },
        region: this.#init.region,
        ...(this.#init.maxSkewMs !== undefined ? { maxSkewMs: this.#init.maxSkewMs } : {}),
        ...(bodySha256 !== undefined ? { bodySha256 } : {}),
      })
      const principal = this.#principalAfterSignature(
        auth.accessKeyId,
        session,
        record,
        auth.sessionToken,
        now,
      )
      if (record !== undefined) this.#init.store.touch(record.id, now)
      return { principal, auth }
    } catch (err) {
      if (err instanceof S3Error && AUTH_FAILURES.has(err.code)) {
        this.#byAddress.fail(sourceIp, now)
        if (keyId !== undefined) this.#byKey.fail(keyId, now)
      }
      throw err
    }
  }

  accountId(): string {
    return this.#snap.account.id
  }

  accountOwner(): AclOwner {
    // The root credential does not change while the gateway runs.
    this.#accountOwner ??= {
      id: canonicalIdOf(this.#init.root.accessKeyId),
      displayName: 'root',
    }
    return this.#accountOwner
  }

  canonicalUser(id: string): AclOwner | undefined {
    const hit = this.#canonicalIds().get(id)
    if (hit !== undefined) return hit
    // Identity writes of this gateway change the snapshot in place: look again once.
    this.#canonical = undefined
    return this.#canonicalIds().get(id)
  }

  canonicalUserByEmail(email: string): AclOwner | undefined {
    const e = email.trim().toLowerCase()
    for (const u of this.#snap.users.values()) {
      if (u.email === e) return { id: canonicalIdOf(u.id), displayName: u.name }
    }
    return undefined
  }

  #canonicalIds(): Map<string, AclOwner> {
    const snap = this.#snap
    if (this.#canonical?.snap !== snap) {
      const byId = new Map<string, AclOwner>()
      for (const u of snap.users.values()) {
        const c = canonicalIdOf(u.id)
        byId.set(c, { id: c, displayName: u.name })
      }
      const root = this.accountOwner()
      byId.set(root.id, root)
      this.#canonical = { snap, byId }
    }
    return this.#canonical.byId
  }

  async authenticatePost(form: PostPolicyCredentials, sourceIp: string): Promise<Authenticated> {
    const now = Date.now()
    const wait = this.#byAddress.blockedFor(sourceIp, now)
    if (wait > 0) throw slowDown(wait)
    const scope = form.credential.split('/')
    if (
      scope.length !== 5 ||
      scope[0] === '' ||
      !/^\d{8}$/.test(scope[1]!) ||
      scope[4] !== 'aws4_request' ||
      scope[3] !== 's3'
    ) {
      throw new S3Error(
        'InvalidArgument',
        'Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".',
        { ArgumentName: 'x-amz-credential', ArgumentValue: form.credential },
      )
    }
    const [id, date, region, service] = scope as [string, string, string, string]
    if (region !== this.#init.region) {
      throw new S3Error(
        'InvalidArgument',
        `Error parsing the X-Amz-Credential parameter; the region '${region}' is wrong; expecting '${this.#init.region}'`,
        { ArgumentName: 'x-amz-credential', ArgumentValue: form.credential },
      )
    }
    let session: SessionClaims | undefined
    let record: AccessKeyRecord | undefined
    try {
      const w = this.#byKey.blockedFor(id, now)
      if (w > 0) throw slowDown(w)
      const tokenReq: SignedRequest = {
        method: 'POST',
        path: '/',
        query: '',
        headers:
          form.securityToken !== undefined ? { 'x-amz-security-token': form.securityToken } : {},
      }
      const secret = this.#secretOf(
        id,
        tokenReq,
        (c) => (session = c),
        (r) => (record = r),
      )
      if (secret === undefined) {
        throw new S3Error('InvalidAccessKeyId', undefined, { AWSAccessKeyId: id })
      }
      const want = postPolicySignature(secret, date, region, service, form.policy)
      if (!signaturesEqual(want, form.signature)) {
        throw new S3Error('SignatureDoesNotMatch', undefined, {
          AWSAccessKeyId: id,
          StringToSign: form.policy,
          SignatureProvided: form.signature,
        })
      }
      const principal = this.#principalAfterSignature(id, session, record, form.securityToken, now)
      if (record !== undefined) this.#init.store.touch(record.id, now)
      return { principal }
    } catch (err) {
      if (err instanceof S3Error && AUTH_FAILURES.has(err.code)) {
        this.#byAddress.fail(sourceIp, now)
        this.#byKey.fail(id, now)
      }
      throw err
    }
  }

  /** The secret to verify with; undefined answers InvalidAccessKeyId. */
  #secretOf(
    id: string,
    req: SignedRequest,
    onSession: (c: SessionClaims) => void,
    onRecord: (r: AccessKeyRecord) => void,
  ): string | undefined {
    if (equalsConstantTime(id, this.#init.root.accessKeyId)) return this.#init.root.secretAccessKey
    const token = sessionTokenOf(req)
    if (token !== undefined) {
      const claims = this.#init.sealer.openToken<SessionClaims>(token)
      if (claims === undefined || claims.v !== 1 || claims.kid !== id) {
        throw new S3Error('InvalidToken')
      }
      onSession(claims)
      return claims.sec
    }
    const rec = this.#snap.keys.get(id)
    if (rec === undefined) return undefined
    onRecord(rec)
    const hit = this.#secrets.get(id)
    if (hit !== undefined && hit.sealed === rec.secret) return hit.secret
    const secret = this.#init.sealer.open(rec.secret, `key:${id}`)
    this.#secrets.set(id, { sealed: rec.secret, secret })
    return secret
  }

  #principalAfterSignature(
    id: string,
    session: SessionClaims | undefined,
    record: AccessKeyRecord | undefined,
    token: string | undefined,
    now: number,
  ): Principal {
    const snap = this.#snap
    if (session !== undefined) {
      if (session.exp <= now) throw new S3Error('ExpiredToken')
      let servicePolicy: string | undefined
      let root = false
      if (equalsConstantTime(session.par, this.#init.root.accessKeyId)) root = true
      else {
        const parent = snap.keys.get(session.par)
        const why = parent ? this.#keyRefusal(parent, now) : 'was deleted'
        if (why !== undefined) {
          throw new S3Error(
            'InvalidToken',
            `The session's parent credential ${why}; the session has ended.`,
          )
        }
        servicePolicy = parent!.policy
      }
      const base = root ? this.#rootPrincipal : this.#userPrincipal(session.usr)
      return {
        ...base,
        kind: 'session',
        accessKeyId: id,
        ...(session.prj !== undefined ? { project: session.prj } : {}),
        expires: session.exp,
        ...(session.pol !== undefined ? { sessionPolicy: session.pol } : {}),
        ...(servicePolicy !== undefined ? { servicePolicy } : {}),
        sessionName: session.nm,
        arn: `arn:aws:sts::${snap.account.id}:assumed-role/${session.rol}/${session.nm}`,
      }
    }
    if (record === undefined) {
      if (token !== undefined) throw new S3Error('InvalidToken')
      return this.#rootPrincipal
    }
    if (token !== undefined) {
      throw new S3Error('InvalidToken', 'A session token was sent with a long-term access key.')
    }
    const why = this.#keyRefusal(record, now)
    if (why !== undefined) throw new S3Error('InvalidAccessKeyId', `The access key ${id} ${why}.`)
    return {
      ...this.#userPrincipal(record.user),
      kind: record.kind === 'service-account' ? 'service-account' : 'user',
      accessKeyId: id,
      project: record.project,
      ...(record.policy !== undefined ? { servicePolicy: record.policy } : {}),
    }
  }

  /** Why a key (or its user) is refused now, or undefined when it is usable. */
  #keyRefusal(rec: AccessKeyRecord, now: number): string | undefined {
    const user = this.#snap.users.get(rec.user)
    if (user === undefined) return 'belongs to a user that no longer exists'
    if (user.disabled) return `belongs to user ${rec.user}, who is disabled`
    if (rec.status !== 'Active') return 'is inactive'
    if (rec.expires !== undefined && rec.expires <= now) {
      return `expired on ${new Date(rec.expires).toISOString()}`
    }
    const maxAgeMs = this.#snap.account.maxKeyAgeDays * 86_400_000
    if (rec.kind === 'key' && now - rec.created > maxAgeMs) {
      return `is older than the account's maximum key age of ${this.#snap.account.maxKeyAgeDays} days; create a new key and delete this one`
    }
    return undefined
  }

  #userPrincipal(name: string): Principal {
    const user = this.#snap.users.get(name)
    return {
      kind: 'user',
      accessKeyId: '',
      name,
      userId: user?.id ?? name,
      arn: arnOfUser(this.#snap.account.id, name),
      canonicalId: canonicalIdOf(user?.id ?? name),
      displayName: name,
      root: false,
    }
  }

  projectOf(who: Authenticated): string {
    return who.principal?.project ?? DEFAULT_PROJECT
  }

  sees(who: Authenticated, bucket: BucketRecord): boolean {
    const p = who.principal
    if (p === undefined) return false
    if (p.project === undefined) return true
    return (bucket.project || DEFAULT_PROJECT) === p.project
  }

  async authorize(who: Authenticated, what: AccessRequest): Promise<void> {
    // The bucket's project and policy always take part: a caller that did not pass the record
    // (a copy source, a key of DeleteObjects) gets it looked up, never the caller's project.
    const b =
      what.bucketRecord ??
      (what.bucket !== undefined && what.action !== 's3:CreateBucket'
        ? await this.#init.bucketOf(what.bucket)
        : undefined)
    const policy = b?.settings?.policy
    let context: DecisionInput['context'] | undefined
    const contextNow = () => {
      context ??= this.conditionContext(who, what)
      return context
    }
    const input: DecisionInput = {
      ...(who.principal !== undefined ? { principal: who.principal } : {}),
      action: what.action,
      resource:
        what.bucket === undefined
          ? 'arn:aws:s3:::*'
          : what.key === undefined
            ? `arn:aws:s3:::${what.bucket}`
            : `arn:aws:s3:::${what.bucket}/${what.key}`,
      ...(b !== undefined
        ? {
            bucket: {
              name: b.name,
              project: b.project || DEFAULT_PROJECT,
              ...(typeof policy === 'string' ? { policy } : {}),
              ...(publicAccessBlockOf(b).RestrictPublicBuckets
                ? { restrictPublicBuckets: true }
                : {}),
            },
          }
        : { project: this.projectOf(who) }),
      // Made when a policy is evaluated: the root credential's requests never need it.
      get context() {
        return contextNow()
      },
    }
    const aclScope = ACL_ACTIONS[what.action]?.scope
    if (b !== undefined && aclScope === 'bucket') {
      const acl = bucketAclInForce(b, this)
      if (acl !== undefined) input.acl = acl
    }
    let d = decide(this.#snap, input, this.#policies)
    if (!d.allowed && aclScope === 'object' && what.objectAcl !== undefined) {
      // Object ACLs need the version's record: read only when the rest of the decision denies.
      const acl = await what.objectAcl()
      if (acl !== undefined) d = decide(this.#snap, { ...input, acl }, this.#policies)
    }
    if (!d.allowed) {
      if (what.probe) throw new S3Error('AccessDenied')
      this.#init.log.info(
        {
          reqId: what.request?.requestId,
          principal: who.principal?.arn || who.principal?.name || 'anonymous',
          accessKeyId: who.principal?.accessKeyId,
          action: what.action,
          resource: input.resource,
          reason: d.reason,
        },
        'access denied',
      )
      throw new S3Error('AccessDenied')
    }
  }

  /** The condition keys of a request (aws:* globals and the s3:* keys of its action). */
  conditionContext(
    who: Authenticated,
    what: AccessRequest,
  ): Record<string, string | string[] | undefined> {
    const p = who.principal
    const r = what.request
    const now = new Date()
    const ctx: Record<string, string | string[] | undefined> = {
      'aws:currenttime': now.toISOString(),
      'aws:epochtime': String(Math.floor(now.getTime() / 1000)),
      'aws:securetransport': r?.secure ? 'true' : 'false',
      'aws:principaltype':
        p === undefined
          ? 'Anonymous'
          : p.root
            ? 'Account'
            : p.kind === 'session'
              ? 'AssumedRole'
              : 'User',
    }
    if (p !== undefined) {
      ctx['aws:username'] = p.root ? undefined : p.name
      ctx['aws:userid'] = p.userId
      ctx['aws:principalarn'] = p.arn || undefined
      ctx['aws:principalaccount'] = this.#snap.account.id
    }
    if (r !== undefined) {
      ctx['aws:sourceip'] = stripMapped(r.sourceIp)
      ctx['aws:useragent'] = r.headers['user-agent']
      ctx['aws:referer'] = r.headers.referer
      const q = r.params
      for (const k of ['prefix', 'delimiter', 'max-keys']) {
        if (q.has(k)) ctx[`s3:${k}`] = q.get(k) ?? ''
      }
      if (q.has('versionId')) ctx['s3:versionid'] = q.get('versionId') ?? ''
      for (const h of [
        'x-amz-content-sha256',
        'x-amz-acl',
        'x-amz-grant-read',
        'x-amz-grant-write',
        'x-amz-grant-read-acp',
        'x-amz-grant-write-acp',
        'x-amz-grant-full-control',
        'x-amz-object-ownership',
        'x-amz-copy-source',
        'x-amz-metadata-directive',
        'x-amz-server-side-encryption',
        'x-amz-storage-class',
      ]) {
        if (r.headers[h] !== undefined) ctx[`s3:${h}`] = r.headers[h]
      }
      if (who.auth) {
        ctx['s3:signatureversion'] = 'AWS4-HMAC-SHA256'
        ctx['s3:authtype'] = who.auth.presigned ? 'REST-QUERY-STRING' : 'REST-HEADER'
        ctx['s3:signatureage'] = String(Math.max(0, now.getTime() - who.auth.date.getTime()))
      }
    }
    return ctx
  }
}

function sessionTokenOf(req: SignedRequest): string | undefined {
  const h = req.headers['x-amz-security-token']
  if (h !== undefined) return h
  if (!req.query.includes('X-Amz-Security-Token=')) return undefined
  const v = new URLSearchParams(req.query).get('X-Amz-Security-Token')
  return v ?? undefined
}

function stripMapped(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip
}

function slowDown(waitMs: number): S3Error {
  return new S3Error(
    'SlowDown',
    `Too many failed authentication attempts; try again in ${Math.ceil(waitMs / 1000)} s.`,
  )
}
