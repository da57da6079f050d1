/**
 * The S3 front door: finds bucket and key (path style, or virtual-hosted under the configured
 * domain), authenticates, picks the operation from method and sub-resource, authorizes it,
 * runs it, and answers every failure with S3's XML error. Every answer carries
 * x-amz-request-id and x-amz-id-2.
 */
import { randomBytes } from 'node:crypto'
import type { BucketRecord } from '@tessera/protocol'
import type { Request, Response } from '../http/server.ts'
import * as bucketOps from './bucket-ops.ts'
import type { S3Context, S3Deps } from './context.ts'
import { S3Error, toS3Error } from './errors.ts'
import * as mpOps from './multipart-ops.ts'
import * as objOps from './object-ops.ts'
import { errorXml } from './xml.ts'

export interface S3ApiInit extends S3Deps {
  /** Virtual-hosted-style domain: requests to <bucket>.<domain> name the bucket by host. */
  domain?: string
}

type Op = {
  action: string
  needsBucket: boolean
  run(ctx: S3Context, b: BucketRecord): Promise<void>
}

const op = (action: string, run: Op['run'], needsBucket = true): Op => ({
  action,
  needsBucket,
  run,
})

/** Sub-resources we know but do not offer yet: NotImplemented rather than a wrong answer. */
const NOT_YET = [
  'acl',
  'policy',
  'cors',
  'lifecycle',
  'website',
  'logging',
  'notification',
  'replication',
  'encryption',
  'object-lock',
  'retention',
  'legal-hold',
  'accelerate',
  'requestPayment',
  'ownershipControls',
  'publicAccessBlock',
  'analytics',
  'inventory',
  'metrics',
  'intelligent-tiering',
  'attributes',
  'restore',
  'select',
  'torrent',
  'policyStatus',
]

function route(
  method: string,
  hasKey: boolean,
  q: URLSearchParams,
  headers: Record<string, string>,
): Op | S3Error {
  const has = (k: string) => q.has(k)
  for (const sub of NOT_YET) {
    if (has(sub))
      return new S3Error(
        'NotImplemented',
        `Tessera does not implement the ${sub} sub-resource yet.`,
      )
  }
  if (!hasKey) {
    switch (method) {
      case 'PUT':
        if (has('versioning')) return op('s3:PutBucketVersioning', bucketOps.putBucketVersioning)
        if (has('tagging'))
          return op('s3:PutBucketTagging', (c, b) => bucketOps.putBucketTagging(c, b, false))
        return op('s3:CreateBucket', (c) => bucketOps.createBucket(c), false)
      case 'GET':
        if (has('location'))
          return op('s3:GetBucketLocation', (c) => bucketOps.getBucketLocation(c))
        if (has('versioning')) return op('s3:GetBucketVersioning', bucketOps.getBucketVersioning)
        if (has('tagging')) return op('s3:GetBucketTagging', bucketOps.getBucketTagging)
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
        return op('s3:DeleteBucket', bucketOps.deleteBucket)
      case 'POST':
        if (has('delete')) return op('s3:DeleteObject', objOps.deleteObjects)
        break
    }
    return new S3Error('MethodNotAllowed', undefined, { Method: method, ResourceType: 'BUCKET' })
  }
  switch (method) {
    case 'PUT':
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
    const requestId = randomBytes(8).toString('hex').toUpperCase()
    res.header('x-amz-request-id', requestId)
    res.header('x-amz-id-2', this.#hostId)
    res.header('Server', 'Tessera')
    const started = performance.now()
    let ctx: S3Context | undefined
    let action = 'unknown'
    try {
      const { bucket, key } = this.#target(req)
      const params = new URLSearchParams(req.query)
      const who = await this.#deps.access.authenticate({
        method: req.method,
        path: req.rawPath,
        query: req.query,
        headers: req.headers,
      })
      ctx = {
        req,
        res,
        requestId,
        ...(bucket !== undefined ? { bucket } : {}),
        ...(key !== undefined ? { key } : {}),
        params,
        who,
        deps: this.#deps,
      }
      if (bucket === undefined) {
        if (req.method !== 'GET')
          throw new S3Error('MethodNotAllowed', undefined, {
            Method: req.method,
            ResourceType: 'SERVICE',
          })
        action = 's3:ListAllMyBuckets'
        await this.#deps.access.authorize(who, { action })
        await bucketOps.listBuckets(ctx)
        return
      }
      const o = route(req.method, key !== undefined, params, req.headers)
      if (o instanceof S3Error) throw o
      action = o.action
      await this.#deps.access.authorize(who, {
        action,
        bucket,
        ...(key !== undefined ? { key } : {}),
      })
      let b: BucketRecord | undefined
      if (o.needsBucket) {
        b = await this.#deps.buckets.get(bucket)
        if (b === undefined) throw new S3Error('NoSuchBucket', undefined, { BucketName: bucket })
      }
      await o.run(ctx, b!)
    } catch (err) {
      this.#fail(req, res, requestId, err, ctx)
    } finally {
      this.#deps.log.debug(
        {
          reqId: requestId,
          method: req.method,
          action,
          status: res.statusCode,
          bytesIn: req.body.received,
          bytesOut: res.bytesSent,
          ms: Math.round(performance.now() - started),
        },
        'request',
      )
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

function errText(err: unknown): string {
  if (err instanceof Error) return `${(err as { code?: string }).code ?? err.name}: ${err.message}`
  return String(err)
}
