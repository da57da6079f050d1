/**
 * Authentication and authorization behind one interface, so the identity milestone (#5) can
 * replace the root-only model without touching the S3 handlers: the handlers ask
 * `authenticate` who is calling and `authorize` whether they may do an action on a resource.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { S3Error } from '../s3/errors.ts'
import { authKind, type SignedRequest, type SigV4Auth, verifySigV4 } from './sigv4.ts'

/** Who made a request. */
export interface Principal {
  accessKeyId: string
  /** User name (for logs and aws:username). */
  name: string
  /** S3 canonical user id (64 hex), shown as Owner ID. */
  canonicalId: string
  displayName: string
  /** The deployment's root credential: every action allowed. */
  root: boolean
}

export interface Authenticated {
  /** Undefined for an anonymous (unsigned) request. */
  principal?: Principal
  auth?: SigV4Auth
}

/** What a request wants to do: an IAM action name and the resource it touches. */
export interface AccessRequest {
  action: string
  bucket?: string
  key?: string
}

export interface AccessControl {
  /** Verifies the signature (or accepts an anonymous request); throws S3Error. */
  authenticate(req: SignedRequest): Promise<Authenticated>
  /** Throws AccessDenied unless the caller may do `what`. */
  authorize(who: Authenticated, what: AccessRequest): Promise<void>
}

export interface RootAccessInit {
  accessKeyId: string
  secretAccessKey: string
  region: string
  /** Allowed clock skew; default 15 minutes. */
  maxSkewMs?: number
}

/**
 * The root-only model of this milestone: one credential from the config may do everything;
 * anonymous requests may do nothing.
 */
export class RootAccess implements AccessControl {
  #init: RootAccessInit
  #principal: Principal

  constructor(init: RootAccessInit) {
    this.#init = init
    this.#principal = {
      accessKeyId: init.accessKeyId,
      name: 'root',
      canonicalId: canonicalIdOf(init.accessKeyId),
      displayName: 'root',
      root: true,
    }
  }

  async authenticate(req: SignedRequest): Promise<Authenticated> {
    if (authKind(req) === 'none') return {}
    const want = Buffer.from(this.#init.accessKeyId)
    const auth = await verifySigV4(req, {
      lookupSecret: async (id: string) => {
        const got = Buffer.from(id)
        return got.length === want.length && timingSafeEqual(got, want)
          ? this.#init.secretAccessKey
          : undefined
      },
      region: this.#init.region,
      ...(this.#init.maxSkewMs !== undefined ? { maxSkewMs: this.#init.maxSkewMs } : {}),
    })
    return { principal: this.#principal, auth }
  }

  async authorize(who: Authenticated, _what: AccessRequest): Promise<void> {
    if (who.principal?.root) return
    throw new S3Error('AccessDenied')
  }
}

/** A stable 64-hex canonical user id for a user, like AWS's opaque ids (not secret). */
export function canonicalIdOf(name: string): string {
  return createHash('sha256').update(`tessera-canonical-user:${name}`).digest('hex')
}
