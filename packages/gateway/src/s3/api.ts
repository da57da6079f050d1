/**
 * The S3 front door: finds bucket and key (path style, or virtual-hosted under the configured
 * domain), authenticates, picks the operation from method and sub-resource, authorizes it,
 * runs it, and answers every failure with S3's XML error. Every answer carries
 * x-amz-request-id and x-amz-id-2.
 */
import { createHash, randomBytes } from 'node:crypto'
import type { BucketRecord } from '@tessera/protocol'
import {
  ADMIN_PREFIX,
  type AdminResult,
  adminError,
  adminPath,
  type CapabilityOps,
  handleAdmin,
  parseAdminBody,
} from '../admin/admin-api.ts'
import type { ClusterAdminOps } from '../admin/cluster-admin.ts'
import type { Authenticated, RequestFacts } from '../auth/access.ts'
import type { Request, Response } from '../http/server.ts'
import type { Caller } from '../iam/operations.ts'
import { handleIamQuery, handleStsQuery, queryErrorXml } from '../iam/query-api.ts'
import { type GatewayMetrics, OBSERVABILITY_ACTION } from '../metrics.ts'
import { objectAclLoader } from './acl.ts'
import { getObjectAttributes } from './attributes-ops.ts'
import * as bucketOps from './bucket-ops.ts'
import type { S3Context, S3Deps } from './context.ts'
import * as corsOps from './cors.ts'
import { S3Error, toS3Error } from './errors.ts'
import * as mpOps from './multipart-ops.ts'
import * as objOps from './object-ops.ts'
import { isFormPost, postObject } from './post-object.ts'
import { errorXml } from './xml.ts'

export interface S3ApiInit extends S3Deps {
  /** Cluster status and healing for the admin API. */
  clusterAdmin?: ClusterAdminOps
  /** What a caller may do, for the admin API's /whoami (the web console hides the rest). */
  capabilities?: CapabilityOps
  /** Virtual-hosted-style domain: requests to <bucket>.<domain> name the bucket by host. */
  domain?: string
  /** Request metrics, and the /_tessera/metrics and /_tessera/health/* endpoints. */
  metrics?: GatewayMetrics
}

/** STS actions, to answer an unsigned query call in the right service's error format. */
const STS_ACTIONS = new Set(['AssumeRole', 'GetCallerIdentity', 'GetSessionToken'])

/** S3 authentication error codes as the IAM and STS query APIs name them. */
const QUERY_AUTH_CODES: Partial<Record<string, string>> = {
  InvalidAccessKeyId: 'InvalidClientTokenId',
  InvalidToken: 'InvalidClientTokenId',
  SlowDown: 'Throttling',
  XAmzContentSHA256Mismatch: 'InvalidRequest',
}

type Op = {
  action: string
  needsBucket: boolean
  /** The handler authorizes each key itself (DeleteObjects). */
  perKey?: boolean
  run(ctx: S3Context, b: BucketRecord): Promise<void>
}

const op = (action: string, run: Op['run'], needsBucket = true): Op => ({
  action,
  needsBucket,
  run,
})

/**
 * Sub-resources we know but do not offer yet, with the IAM actions they map to (GET, PUT,
 * DELETE/POST): authorized like any operation, then answered NotImplemented rather than
 * wrongly.
 */
const NOT_YET: Record<string, { bucket?: string[]; object?: string[] }> = {
  website: { bucket: ['s3:GetBucketWebsite', 's3:PutBucketWebsite', 's3:DeleteBucketWebsite'] },
  logging: { bucket: ['s3:GetBucketLogging', 's3:PutBucketLogging'] },
  notification: { bucket: ['s3:GetBucketNotification', 's3:PutBucketNotification'] },
  replication: {
    bucket: [
      's3:GetReplicationConfiguration',
      's3:PutReplicationConfiguration',
      's3:PutReplicationConfiguration',
    ],
  },
  encryption: {
    bucket: [
      's3:GetEncryptionConfiguration',
      's3:PutEncryptionConfiguration',
      's3:PutEncryptionConfiguration',
    ],
  },
  'object-lock': {
    bucket: ['s3:GetBucketObjectLockConfiguration', 's3:PutBucketObjectLockConfiguration'],
  },
  retention: { object: ['s3:GetObjectRetention', 's3:PutObjectRetention'] },
  'legal-hold': { object: ['s3:GetObjectLegalHold', 's3:PutObjectLegalHold'] },
  accelerate: {
    bucket: ['s3:GetAccelerateConfiguration', 's3:PutAccelerateConfiguration'],
  },
  requestPayment: {
    bucket: ['s3:GetBucketRequestPayment', 's3:PutBucketRequestPayment'],
  },
  analytics: {
    bucket: [
      's3:GetAnalyticsConfiguration',
      's3:PutAnalyticsConfiguration',
      's3:PutAnalyticsConfiguration',
    ],
  },
  inventory: {
    bucket: [
      's3:GetInventoryConfiguration',
      's3:PutInventoryConfiguration',
      's3:PutInventoryConfiguration',
    ],
  },
  metrics: {
    bucket: [
      's3:GetMetricsConfiguration',
      's3:PutMetricsConfiguration',
      's3:PutMetricsConfiguration',
    ],
  },
  'intelligent-tiering': {
    bucket: [
      's3:GetIntelligentTieringConfiguration',
      's3:PutIntelligentTieringConfiguration',
      's3:PutIntelligentTieringConfiguration',
    ],
  },
  restore: { object: ['s3:RestoreObject', 's3:RestoreObject', 's3:RestoreObject'] },
  select: { object: ['s3:GetObject', 's3:GetObject', 's3:GetObject'] },
  torrent: { object: ['s3:GetObjectTorrent'] },
}

function notYet(sub: string, method: string, hasKey: boolean): Op | undefined {
  const actions = hasKey ? NOT_YET[sub]?.object : NOT_YET[sub]?.bucket
  const i = method === 'GET' || method === 'HEAD' ? 0 : method === 'PUT' ? 1 : 2
  const action = actions?.[i] ?? actions?.[0] ?? 's3:Unsupported'
  return op(action, async () => {
    throw new S3Error('NotImplemented', `Tessera does not implement the ${sub} sub-resource yet.`)
  })
}

function route(
  method: string,
  hasKey: boolean,
  q: URLSearchParams,
  headers: Record<string, string>,
): Op | S3Error {
  const has = (k: string) => q.has(k)
  for (const sub of Object.keys(NOT_YET)) {
    if (has(sub)) return notYet(sub, method, hasKey)!
  }
  if (!hasKey) {
    switch (method) {
      case 'PUT':
        if (has('versioning')) return op('s3:PutBucketVersioning', bucketOps.putBucketVersioning)
        if (has('tagging'))
          return op('s3:PutBucketTagging', (c, b) => bucketOps.putBucketTagging(c, b, false))
        if (has('policy')) return op('s3:PutBucketPolicy', bucketOps.putBucketPolicy)
        if (has('acl')) return op('s3:PutBucketAcl', bucketOps.putBucketAcl)
        if (has('ownershipControls'))
          return op('s3:PutBucketOwnershipControls', bucketOps.putBucketOwnershipControls)
        if (has('publicAccessBlock'))
          return op('s3:PutBucketPublicAccessBlock', bucketOps.putPublicAccessBlock)
        if (has('cors')) return op('s3:PutBucketCORS', corsOps.putBucketCors)
        if (has('lifecycle'))
          return op('s3:PutLifecycleConfiguration', bucketOps.putBucketLifecycle)
        return op('s3:CreateBucket', (c) => bucketOps.createBucket(c), false)
      case 'GET':
        if (has('location'))
          return op('s3:GetBucketLocation', (c) => bucketOps.getBucketLocation(c))
        if (has('versioning')) return op('s3:GetBucketVersioning', bucketOps.getBucketVersioning)
        if (has('tagging')) return op('s3:GetBucketTagging', bucketOps.getBucketTagging)
        if (has('policy')) return op('s3:GetBucketPolicy', bucketOps.getBucketPolicy)
        if (has('acl')) return op('s3:GetBucketAcl', bucketOps.getBucketAcl)
        if (has('ownershipControls'))
          return op('s3:GetBucketOwnershipControls', bucketOps.getBucketOwnershipControls)
        if (has('publicAccessBlock'))
          return op('s3:GetBucketPublicAccessBlock', bucketOps.getPublicAccessBlock)
        if (has('policyStatus'))
          return op('s3:GetBucketPolicyStatus', bucketOps.getBucketPolicyStatus)
        if (has('cors')) return op('s3:GetBucketCORS', corsOps.getBucketCors)
        if (has('lifecycle'))
          return op('s3:GetLifecycleConfiguration', bucketOps.getBucketLifecycle)
        if (has('versions')) return op('s3:ListBucketVersions', bucketOps.listObjectVersions)
        if (has('uploads')) return op('s3:ListBucketMultipartUploads', mpOps.listMultipartUploads)
        if (q.get('list-type') === '2')
          return op('s3:ListBucket', (c, b) => bucketOps.listObjects(c, b, true))
        return op('s3:ListBucket', (c, b) => bucketOps.listObjects(c, b, false))
      case 'HEAD':
        return op('s3:ListBucket', bucketOps.headBucket)
      case 'DELETE':
        if (has('tagging'))
          return op('s3:PutBucketTagging', (c, b) => bucketOps.putBucketTagging(c, b, true))
        if (has('policy')) return op('s3:DeleteBucketPolicy', bucketOps.deleteBucketPolicy)
        // AWS authorizes these deletes as the matching Put actions.
        if (has('ownershipControls'))
          return op('s3:PutBucketOwnershipControls', bucketOps.deleteBucketOwnershipControls)
        if (has('publicAccessBlock'))
          return op('s3:PutBucketPublicAccessBlock', bucketOps.deletePublicAccessBlock)
        // AWS authorizes DeleteBucketCors as s3:PutBucketCORS.
        if (has('cors')) return op('s3:PutBucketCORS', corsOps.deleteBucketCors)
        // AWS authorizes DeleteBucketLifecycle as s3:PutLifecycleConfiguration.
        if (has('lifecycle'))
          return op('s3:PutLifecycleConfiguration', bucketOps.deleteBucketLifecycle)
        return op('s3:DeleteBucket', bucketOps.deleteBucket)
      case 'POST':
        if (has('delete')) return { ...op('s3:DeleteObject', objOps.deleteObjects), perKey: true }
        break
    }
    return new S3Error('MethodNotAllowed', undefined, { Method: method, ResourceType: 'BUCKET' })
  }
  switch (method) {
    case 'PUT':
      if (has('acl'))
        return op(
          q.has('versionId') ? 's3:PutObjectVersionAcl' : 's3:PutObjectAcl',
          objOps.putObjectAcl,
        )
      if (has('uploadId') || has('partNumber')) {
        if (headers['x-amz-copy-source'] !== undefined)
          return op('s3:PutObject', mpOps.uploadPartCopy)
        return op('s3:PutObject', mpOps.uploadPart)
      }
      if (has('tagging'))
        return op(
          q.has('versionId') ? 's3:PutObjectVersionTagging' : 's3:PutObjectTagging',
          (c, b) => objOps.putObjectTagging(c, b, false),
        )
      if (headers['x-amz-copy-source'] !== undefined) return op('s3:PutObject', objOps.copyObject)
      return op('s3:PutObject', objOps.putObject)
    case 'GET':
      if (has('uploadId')) return op('s3:ListMultipartUploadParts', mpOps.listParts)
      if (has('acl'))
        return op(
          q.has('versionId') ? 's3:GetObjectVersionAcl' : 's3:GetObjectAcl',
          objOps.getObjectAcl,
        )
      if (has('attributes'))
        return op(
          q.has('versionId') ? 's3:GetObjectVersionAttributes' : 's3:GetObjectAttributes',
          getObjectAttributes,
        )
      if (has('tagging'))
        return op(
          q.has('versionId') ? 's3:GetObjectVersionTagging' : 's3:GetObjectTagging',
          objOps.getObjectTagging,
        )
      return op(q.has('versionId') ? 's3:GetObjectVersion' : 's3:GetObject', (c, b) =>
        objOps.getObject(c, b, false),
      )
    case 'HEAD':
      return op(q.has('versionId') ? 's3:GetObjectVersion' : 's3:GetObject', (c, b) =>
        objOps.getObject(c, b, true),
      )
    case 'DELETE':
      if (has('uploadId')) return op('s3:AbortMultipartUpload', mpOps.abortMultipartUpload)
      if (has('tagging'))
        return op(
          q.has('versionId') ? 's3:DeleteObjectVersionTagging' : 's3:DeleteObjectTagging',
          (c, b) => objOps.putObjectTagging(c, b, true),
        )
      return op(
        q.has('versionId') ? 's3:DeleteObjectVersion' : 's3:DeleteObject',
        objOps.deleteObject,
      )
    case 'POST':
      if (has('uploads')) return op('s3:PutObject', mpOps.createMultipartUpload)
      if (has('uploadId')) return op('s3:PutObject', mpOps.completeMultipartUpload)
      break
  }
  return new S3Error('MethodNotAllowed', undefined, { Method: method, ResourceType: 'OBJECT' })
}

/**
 * What an object upload (PutObject, CopyObject, CreateMultipartUpload) must be allowed beyond
 * s3:PutObject: s3:PutObjectTagging when it sets tags (x-amz-tagging), as AWS requires. ACL
 * headers need nothing more: AWS's own cross-account example grants s3:PutObject alone, with a
 * condition on s3:x-amz-acl.
 */
export function uploadExtraActions(
  method: string,
  q: URLSearchParams,
  headers: Readonly<Record<string, string | undefined>>,
): string[] {
  const upload =
    (method === 'PUT' &&
      !q.has('acl') &&
      !q.has('tagging') &&
      !q.has('uploadId') &&
      !q.has('partNumber')) ||
    (method === 'POST' && q.has('uploads'))
  if (!upload) return []
  return headers['x-amz-tagging'] !== undefined ? ['s3:PutObjectTagging'] : []
}

export class S3Api {
  #deps: S3ApiInit
  #hostId = randomBytes(24).toString('base64')

  constructor(init: S3ApiInit) {
    this.#deps = init
  }

  /** Splits a request into bucket and key: virtual-hosted when the host is under the domain. */
  #target(req: Request): { bucket?: string; key?: string } {
    const host = (req.headers.host ?? '').replace(/:\d+$/, '').toLowerCase()
    const domain = this.#deps.domain?.toLowerCase()
    const path = req.rawPath
    const decode = (s: string) => {
      try {
        return decodeURIComponent(s)
      } catch {
        throw new S3Error('InvalidURI')
      }
    }
    if (domain && host.endsWith(`.${domain}`)) {
      const bucket = host.slice(0, -domain.length - 1)
      const key = path.length > 1 ? decode(path.slice(1)) : undefined
      return { bucket, ...(key ? { key } : {}) }
    }
    const rest = path.slice(1)
    if (rest === '') return {}
    const slash = rest.indexOf('/')
    if (slash < 0) return { bucket: decode(rest) }
    const bucket = decode(rest.slice(0, slash))
    const key = decode(rest.slice(slash + 1))
    return key === '' ? { bucket } : { bucket, key }
  }

  /** Serves one request; never throws. */
  async handle(req: Request, res: Response): Promise<void> {
    const requestId = newRequestId()
    res.header('x-amz-request-id', requestId)
    res.header('x-amz-id-2', this.#hostId)
    res.header('Server', 'Tessera')
    const started = performance.now()
    let ctx: S3Context | undefined
    let action = 'unknown'
    let code: string | undefined
    try {
      // Unauthenticated, like a load balancer's probe must be; they reveal no stored data.
      if (this.#deps.metrics?.serves(req.rawPath)) {
        action = OBSERVABILITY_ACTION
        await this.#deps.metrics.serve(req, res)
        return
      }
      if (req.rawPath === ADMIN_PREFIX || req.rawPath.startsWith(`${ADMIN_PREFIX}/`)) {
        action = 'admin'
        await this.#admin(req, res, requestId)
        return
      }
      const { bucket, key } = this.#target(req)
      if (bucket === undefined && req.method === 'POST') {
        action = 'query'
        await this.#query(req, res, requestId)
        return
      }
      if (bucket !== undefined && req.method === 'OPTIONS') {
        // A CORS preflight: never authenticated, answered from the bucket's rules.
        action = 'preflight'
        const pb = await this.#deps.buckets.get(bucket)
        corsOps.answerPreflight(req.headers, res, pb, key !== undefined)
        return
      }
      // A cross-origin request gets its CORS headers first, so error answers carry them too.
      const origin = req.headers.origin
      if (bucket !== undefined && origin !== undefined && origin !== '') {
        const cb = await this.#deps.buckets.get(bucket).catch(() => undefined)
        corsOps.applyCors(res, cb, origin, req.method)
      }
      if (
        bucket !== undefined &&
        key === undefined &&
        req.method === 'POST' &&
        isFormPost(req.headers)
      ) {
        // A browser form upload authenticates by its signed policy, not by the request.
        action = 's3:PutObject'
        const formCtx: { bucket: string; key?: string } = { bucket }
        ctx = formCtx as S3Context
        await postObject({
          req,
          res,
          requestId,
          bucket,
          record: await this.#deps.buckets.get(bucket),
          deps: this.#deps,
          onKey: (k) => (formCtx.key = k),
        })
        return
      }
      const params = new URLSearchParams(req.query)
      const who = await this.#deps.access.authenticate(
        {
          method: req.method,
          path: req.rawPath,
          query: req.query,
          headers: req.headers,
        },
        req.remoteAddress,
      )
      const request: RequestFacts = {
        requestId,
        sourceIp: req.remoteAddress,
        secure: false,
        headers: req.headers,
        params,
      }
      ctx = {
        req,
        res,
        requestId,
        ...(bucket !== undefined ? { bucket } : {}),
        ...(key !== undefined ? { key } : {}),
        params,
        who,
        facts: request,
        deps: this.#deps,
      }
      if (bucket === undefined) {
        if (req.method !== 'GET')
          throw new S3Error('MethodNotAllowed', undefined, {
            Method: req.method,
            ResourceType: 'SERVICE',
          })
        action = 's3:ListAllMyBuckets'
        await this.#deps.access.authorize(who, { action, request })
        await bucketOps.listBuckets(ctx)
        return
      }
      const o = route(req.method, key !== undefined, params, req.headers)
      if (o instanceof S3Error) throw o
      action = o.action
      // CreateBucket acts in the caller's project whether or not the name is taken.
      const b = action === 's3:CreateBucket' ? undefined : await this.#deps.buckets.get(bucket)
      // DeleteObjects is authorized key by key in its handler, as S3 does.
      if (!o.perKey || b === undefined) {
        await this.#deps.access.authorize(who, {
          action,
          bucket,
          ...(key !== undefined ? { key } : {}),
          ...(b !== undefined ? { bucketRecord: b } : {}),
          ...(b !== undefined && key !== undefined
            ? {
                objectAcl: objectAclLoader(
                  this.#deps.objects,
                  this.#deps.access,
                  b,
                  key,
                  params.get('versionId') ?? undefined,
                ),
              }
            : {}),
          request,
        })
      }
      // Tags given with an upload need their own permission too, as in AWS.
      if (b !== undefined && key !== undefined) {
        for (const extra of uploadExtraActions(req.method, params, req.headers)) {
          await this.#deps.access.authorize(who, {
            action: extra,
            bucket,
            key,
            bucketRecord: b,
            request,
          })
        }
      }
      if (o.needsBucket && b === undefined) {
        throw new S3Error('NoSuchBucket', undefined, { BucketName: bucket })
      }
      checkExpectedOwner(req.headers['x-amz-expected-bucket-owner'], b, this.#deps.access)
      // CopyObject and UploadPartCopy (the only PUTs authorized as s3:PutObject that name a source).
      if (o.action === 's3:PutObject' && req.headers['x-amz-copy-source'] !== undefined) {
        await checkSourceExpectedOwner(req.headers, this.#deps)
      }
      await o.run(ctx, b!)
    } catch (err) {
      code = toS3Error(err).code
      this.#fail(req, res, requestId, err, ctx)
    } finally {
      const ms = performance.now() - started
      const status = res.statusCode
      const bytesIn = req.body.received
      const bytesOut = res.bytesSent
      this.#deps.metrics?.observeRequest({
        operation: action,
        status,
        bytesIn,
        bytesOut,
        seconds: ms / 1000,
      })
      // Denied and failed requests at info and warn, so they show at the default level.
      const level =
        action === OBSERVABILITY_ACTION || status < 400 ? 'debug' : status >= 500 ? 'warn' : 'info'
      this.#deps.log[level](
        {
          reqId: requestId,
          method: req.method,
          action,
          status,
          ...(code !== undefined ? { code } : {}),
          bytesIn,
          bytesOut,
          ms: Math.round(ms),
        },
        'request',
      )
    }
  }

  /** Reads a small request body and authenticates the request with the body's hash. */
  async #authenticateWithBody(
    req: Request,
  ): Promise<{ who: Authenticated; body: Buffer; caller?: Caller }> {
    const body = await req.body.readAll(
      QUERY_BODY_MAX_BYTES,
      () =>
        new S3Error(
          'InvalidRequest',
          `The request body is larger than ${QUERY_BODY_MAX_BYTES} bytes.`,
        ),
    )
    const sha = createHash('sha256').update(body).digest('hex')
    const who = await this.#deps.access.authenticate(
      { method: req.method, path: req.rawPath, query: req.query, headers: req.headers },
      req.remoteAddress,
      sha,
    )
    if (who.auth?.payloadSha256 !== undefined && who.auth.payloadSha256 !== sha) {
      throw new S3Error('XAmzContentSHA256Mismatch', undefined, {
        ClientComputedContentSHA256: who.auth.payloadSha256,
        S3ComputedContentSHA256: sha,
      })
    }
    const p = who.principal
    return {
      who,
      body,
      ...(p !== undefined
        ? { caller: { principal: p, requestId: '', sourceIp: req.remoteAddress, secure: false } }
        : {}),
    }
  }

  /** The IAM and STS query APIs: a form POST to the service root, told apart by the signing scope. */
  async #query(req: Request, res: Response, requestId: string): Promise<void> {
    const ctype = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase()
    let service: 'iam' | 'sts' = 'iam'
    const reply = (status: number, body: string) => {
      res.status(status).header('Content-Type', 'text/xml').end(body)
    }
    try {
      if (ctype !== 'application/x-www-form-urlencoded') {
        throw new S3Error('MethodNotAllowed', undefined, {
          Method: 'POST',
          ResourceType: 'SERVICE',
        })
      }
      const { who, body, caller } = await this.#authenticateWithBody(req)
      const params = new URLSearchParams(req.query)
      for (const [k, v] of new URLSearchParams(body.toString('utf8'))) params.append(k, v)
      const action = params.get('Action') ?? ''
      service =
        who.auth?.service === 'sts' || (who.auth === undefined && STS_ACTIONS.has(action))
          ? 'sts'
          : 'iam'
      if (caller === undefined) {
        reply(
          403,
          queryErrorXml(
            service,
            'MissingAuthenticationToken',
            'Request is missing Authentication Token',
            requestId,
          ),
        )
        return
      }
      caller.requestId = requestId
      const onInternalError = (err: unknown, act: string) =>
        this.#deps.log.warn({ reqId: requestId, action: act, err: errText(err) }, 'request failed')
      const result =
        service === 'sts'
          ? await handleStsQuery(this.#deps.iam, caller, params, requestId, onInternalError)
          : await handleIamQuery(this.#deps.iam, caller, params, requestId, onInternalError)
      reply(result.status, result.body)
    } catch (err) {
      const e = toS3Error(err)
      if (e.code === 'MethodNotAllowed') throw e
      const code = QUERY_AUTH_CODES[e.code] ?? e.code
      const status = code === 'InvalidClientTokenId' ? 403 : code === 'Throttling' ? 400 : e.status
      const message =
        code === 'InvalidClientTokenId' &&
        e.code === 'InvalidAccessKeyId' &&
        !e.message.includes('The access key')
          ? 'The security token included in the request is invalid.'
          : e.message
      if (e.status >= 500 && code !== 'Throttling') {
        this.#deps.log.warn(
          { reqId: requestId, code: e.code, err: errText(e.cause ?? err) },
          'request failed',
        )
      }
      reply(status, queryErrorXml(service, code, message, requestId))
    }
  }

  /** The admin API: JSON over SigV4-signed HTTP under ADMIN_PREFIX. */
  async #admin(req: Request, res: Response, requestId: string): Promise<void> {
    const reply = (r: AdminResult) => {
      if (r.body === undefined) {
        res.status(r.status).end()
        return
      }
      res.status(r.status).header('Content-Type', 'application/json').end(JSON.stringify(r.body))
    }
    try {
      const { who, body, caller } = await this.#authenticateWithBody(req)
      const auth = who.auth
      if (caller === undefined || auth === undefined) {
        reply(adminError('AccessDenied', 403, 'The admin API needs a signed request.', requestId))
        return
      }
      // Only a header-signed request whose signature covers the body's hash (service s3).
      if (auth.service !== 's3' || auth.presigned || auth.payload !== 'signed') {
        reply(
          adminError(
            'InvalidInput',
            400,
            "Sign admin calls in the Authorization header for service s3, with x-amz-content-sha256 set to the body's SHA-256.",
            requestId,
          ),
        )
        return
      }
      caller.requestId = requestId
      const parsed = parseAdminBody(body, requestId)
      if (!parsed.ok) {
        reply(parsed.result)
        return
      }
      reply(
        await handleAdmin(
          this.#deps.iam,
          caller,
          {
            method: req.method,
            path: adminPath(req.rawPath) ?? '/',
            query: new URLSearchParams(req.query),
            body: parsed.body,
          },
          {
            onError: (err) =>
              this.#deps.log.warn({ reqId: requestId, err: errText(err) }, 'admin call failed'),
            ...(this.#deps.clusterAdmin ? { cluster: this.#deps.clusterAdmin } : {}),
            ...(this.#deps.capabilities ? { capabilities: this.#deps.capabilities } : {}),
          },
        ),
      )
    } catch (err) {
      const e = toS3Error(err)
      if (e.status >= 500) {
        this.#deps.log.warn(
          { reqId: requestId, code: e.code, err: errText(e.cause ?? err) },
          'request failed',
        )
      }
      reply(adminError(e.code, e.status, e.message, requestId))
    }
  }

  #fail(req: Request, res: Response, requestId: string, err: unknown, ctx?: S3Context): void {
    const e = toS3Error(err)
    if (e.code === 'InternalError' || e.status === 503) {
      this.#deps.log.warn(
        { reqId: requestId, code: e.code, err: errText(e.cause ?? err) },
        'request failed',
      )
    }
    req.body.discard()
    if (res.finished || res.aborted) return
    res.status(e.status)
    for (const [k, v] of Object.entries(e.headers)) res.header(k, v)
    if (e.status === 304 || req.method === 'HEAD') {
      res.endWithoutBody()
      return
    }
    const resource = ctx?.bucket
      ? `/${ctx.bucket}${ctx.key !== undefined ? `/${ctx.key}` : ''}`
      : req.rawPath
    res.header('Content-Type', 'application/xml').end(
      errorXml({
        code: e.code,
        message: e.message,
        resource,
        requestId,
        hostId: this.#hostId,
        extra: e.extra,
      }),
    )
  }
}

/**
 * x-amz-expected-bucket-owner: a value that is not an account id is refused as malformed; one
 * that is not the owning account's id is AccessDenied (S3 hides whose bucket it is).
 */
function checkExpectedOwner(
  expected: string | undefined,
  b: BucketRecord | undefined,
  access: S3ApiInit['access'],
): void {
  if (expected === undefined) return
  if (!/^\d{12}$/.test(expected)) {
    throw new S3Error(
      'InvalidBucketOwnerAWSAccountID',
      `The value of the expected bucket owner parameter must be an AWS Account ID... [${expected}]`,
    )
  }
  if (b !== undefined && expected !== access.accountId()) throw new S3Error('AccessDenied')
}

/**
 * x-amz-source-expected-bucket-owner of a copy: the same checks as
 * x-amz-expected-bucket-owner, against the source bucket. A copy source that does not parse or
 * names no bucket is left to the copy itself to refuse.
 */
async function checkSourceExpectedOwner(
  headers: Record<string, string>,
  deps: Pick<S3ApiInit, 'access' | 'buckets'>,
): Promise<void> {
  const expected = headers['x-amz-source-expected-bucket-owner']
  if (expected === undefined) return
  if (!/^\d{12}$/.test(expected)) {
    throw new S3Error(
      'InvalidBucketOwnerAWSAccountID',
      `The value of the source expected bucket owner parameter must be an AWS Account ID... [${expected}]`,
    )
  }
  let source: string
  try {
    source = objOps.parseCopySource(headers['x-amz-copy-source']!).bucket
  } catch {
    return
  }
  const sb = await deps.buckets.get(source)
  checkExpectedOwner(expected, sb, deps.access)
}

/** Random bytes drawn at once for request ids: a randomBytes call per request cost ~2% of a GET. */
const REQUEST_ID_POOL_BYTES = 8 * 512
let requestIdPool = Buffer.alloc(0)
let requestIdAt = 0

/** A request id: 8 random bytes as 16 upper-case hex digits, like S3's. */
function newRequestId(): string {
  if (requestIdAt + 8 > requestIdPool.length) {
    requestIdPool = randomBytes(REQUEST_ID_POOL_BYTES)
    requestIdAt = 0
  }
  const id = requestIdPool.toString('hex', requestIdAt, requestIdAt + 8).toUpperCase()
  requestIdAt += 8
  return id
}

/** Largest IAM/STS form body and admin JSON body accepted. */
const QUERY_BODY_MAX_BYTES = 1024 * 1024

function errText(err: unknown): string {
  if (err instanceof Error) return `${(err as { code?: string }).code ?? err.name}: ${err.message}`
  return String(err)
}
