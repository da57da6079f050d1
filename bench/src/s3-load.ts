/**
 * The S3 load generator: PUTs or GETs objects of one size at a fixed concurrency against an S3
 * endpoint, and reports ops/s, MB/s and latency percentiles. Used by the S3 benchmark (against
 * the gateway and the HTTP ceiling side by side) and meant to be the core of a warp-like CLI.
 *
 * The client must cost as little CPU as it can, because on a 2-core machine it shares the CPU
 * with the server it measures:
 * - undici's low-level `dispatch` on a Pool with one connection per worker (keep-alive, no
 *   pipelining), with one reusable handler object per worker: no streams, no promises, no
 *   header objects per request;
 * - PUT bodies are views of one preallocated random buffer (written to the socket as they are,
 *   never copied), GET bodies are counted and dropped: client memory stays at that one buffer
 *   whatever the size × concurrency;
 * - AWS SigV4 (header auth, `UNSIGNED-PAYLOAD`) signed here, with the signing key cached per day
 *   and, for a fixed set of keys (GET), the headers of a path reused within the second that its
 *   x-amz-date names;
 * - latencies go to a preallocated Float64Array, sorted once at the end.
 *
 * Objects are named `<keyPrefix>-<size>-<n>`: the HTTP ceiling reads the size from the key.
 */
import { createHmac, hash, randomFillSync } from 'node:crypto'
import cliProgress from 'cli-progress'
import { Pool } from 'undici'

/** AWS-style credentials; without them requests go unsigned. */
export interface Credentials {
  accessKeyId: string
  secretAccessKey: string
}

/** Where the objects are. */
export interface Target {
  /** Origin of the S3 endpoint, e.g. `http://127.0.0.1:9000` (path-style URLs are used). */
  endpoint: string
  credentials?: Credentials
  /** SigV4 region. Default `us-east-1`. */
  region?: string
  bucket: string
}

/** Progress of a run, reported about twice a second (and at the end of each phase). */
export interface LoadProgress {
  phase: 'prepare' | 'warmup' | 'run'
  /** Operations completed successfully in this phase so far. */
  ops: number
  errors: number
  /** Payload bytes moved by the completed operations. */
  bytes: number
  elapsedMs: number
  /** Operations this phase will issue, when bounded by a count. */
  total?: number
}

/** One load run: one operation, one object size, one concurrency. */
export interface LoadOptions extends Target {
  op: 'put' | 'get'
  /** Object size in bytes. */
  size: number
  /** Requests in flight at once (and connections). */
  concurrency: number
  /**
   * Stop issuing requests after this long (those in flight complete and count). Default 3000,
   * unless `count` is given. Large objects at high concurrency take a while per request: give
   * such runs a duration of several request latencies.
   */
  durationMs?: number
  /** Stop after issuing this many requests (instead of, or as well as, `durationMs`). */
  count?: number
  /** Objects are named `<keyPrefix>-<size>-<n>`. */
  keyPrefix: string
  /**
   * GET (required): how many objects {@link prepareObjects} created; they are read round-robin.
   * PUT (optional): overwrite keys 0…objects-1 round-robin instead of writing a new key each time.
   */
  objects?: number
  /**
   * An untimed phase first, same load, so that connections are open and the code is hot.
   * Default: a fifth of the duration, at most 1000 ms; 0 for count-bounded runs.
   */
  warmupMs?: number
  onProgress?: (p: LoadProgress) => void
}

/** What a load run measured (its timed phase only). */
export interface LoadResult {
  /** Successful operations. */
  ops: number
  /** Payload bytes of the successful operations (GET: as counted on the wire). */
  bytes: number
  /** From the first request issued to the last response completed. */
  seconds: number
  opsPerSec: number
  /** Payload MB/s, MB = 1e6 bytes. */
  mbps: number
  /** Latency percentiles of the successful operations, request issued → response complete. */
  p50ms: number
  p99ms: number
  /** Failed operations: transport errors, non-2xx answers, GET bodies of the wrong size. */
  errors: number
  firstError?: string
}

/** The name of object `n` of a run: what the HTTP ceiling parses the size from. */
export function objectKey(keyPrefix: string, size: number, n: number): string {
  return `${keyPrefix}-${size}-${n}`
}

/** Runs one load phase (after an optional warm-up phase) and measures it. */
export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  if (opts.op === 'get' && !(opts.objects && opts.objects > 0))
    throw new Error('runLoad: a GET run needs `objects` (see prepareObjects)')
  const durationMs = opts.durationMs ?? (opts.count === undefined ? 3000 : undefined)
  const warmupMs = opts.warmupMs ?? (durationMs === undefined ? 0 : Math.min(1000, durationMs / 5))
  const pool = newPool(opts.endpoint, opts.concurrency)
  try {
    // PUTs continue numbering keys after the warm-up's, so they always write new keys.
    const keys = { next: 0 }
    if (warmupMs > 0) {
      await phase(pool, opts, keys, { phase: 'warmup', durationMs: warmupMs })
    }
    return await phase(pool, opts, keys, { phase: 'run', durationMs, count: opts.count })
  } finally {
    await pool.close()
  }
}

/**
 * Creates objects 0…count-1 of `size` for a GET run (PUTs at `concurrency`, default 8), with a
 * progress bar on a terminal unless `onProgress` is given. Throws if any PUT failed.
 */
export async function prepareObjects(
  opts: Target & {
    size: number
    count: number
    keyPrefix: string
    concurrency?: number
    onProgress?: (p: LoadProgress) => void
  },
): Promise<void> {
  const concurrency = Math.min(opts.concurrency ?? 8, opts.count)
  let onProgress = opts.onProgress
  let bar: cliProgress.SingleBar | undefined
  if (!onProgress && process.stderr.isTTY) {
    bar = new cliProgress.SingleBar(
      {
        stream: process.stderr,
        format: `  prepare ${opts.count} × ${opts.size} B {bar} {value}/{total} {duration}s`,
        hideCursor: true,
        clearOnComplete: true,
      },
      cliProgress.Presets.shades_classic,
    )
    bar.start(opts.count, 0)
    onProgress = (p) => bar!.update(p.ops + p.errors)
  }
  const pool = newPool(opts.endpoint, concurrency)
  try {
    const r = await phase(
      pool,
      { ...opts, op: 'put', concurrency, onProgress },
      { next: 0 },
      { phase: 'prepare', count: opts.count },
    )
    if (r.errors > 0) {
      throw new Error(
        `prepareObjects: ${r.errors} of ${opts.count} PUTs failed, first: ${r.firstError}`,
      )
    }
  } finally {
    bar?.stop()
    await pool.close()
  }
}

/** Creates the bucket (PUT /<bucket>); a bucket that already exists and is ours is fine. */
export async function createBucket(target: Target): Promise<void> {
  const url = new URL(target.endpoint)
  const signer = target.credentials
    ? createSigner(target.credentials, target.region ?? 'us-east-1')
    : undefined
  const path = `/${encodePath(target.bucket)}`
  const pool = newPool(target.endpoint, 1)
  try {
    const res = await pool.request({
      path,
      method: 'PUT',
      headers: signer ? signer.headers('PUT', url.host, path) : ['host', url.host],
    })
    const text = await res.body.text()
    if (res.statusCode >= 300 && !text.includes('BucketAlreadyOwnedByYou'))
      throw new Error(`createBucket ${target.bucket}: ${res.statusCode} ${text.slice(0, 300)}`)
  } finally {
    await pool.close()
  }
}

// ---------------------------------------------------------------------------------------------
// The engine.

function newPool(endpoint: string, connections: number): Pool {
  return new Pool(endpoint, {
    connections,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    keepAliveMaxTimeout: 600_000,
    // A 64 MiB PUT at concurrency 32 against a slow server waits long for its answer.
    headersTimeout: 300_000,
    bodyTimeout: 300_000,
  })
}

/** One preallocated random buffer for every PUT body, grown to the largest size asked for. */
let putData = Buffer.alloc(0)
function putBody(size: number): Buffer {
  if (putData.length < size) putData = randomFillSync(Buffer.allocUnsafeSlow(size))
  return putData.subarray(0, size)
}

/** Initial latency slots per second of a duration-bounded run (the array grows if needed). */
const SLOTS_PER_SECOND = 100_000
const MAX_FIRST_ERROR = 300

/** The shared state of one phase; each worker keeps one request in flight. */
class Phase {
  readonly pool: Pool
  readonly opts: LoadOptions
  readonly method: 'PUT' | 'GET'
  readonly body: Buffer | null
  readonly host: string
  readonly signer: Signer | undefined
  readonly keys: { next: number }
  readonly paths: string[] | undefined
  readonly pathPrefix: string
  /** Workers issue requests until this many ms have passed since t0. */
  readonly durationMs: number
  readonly count: number
  readonly kind: LoadProgress['phase']
  lat: Float64Array
  ops = 0
  bytes = 0
  errors = 0
  issued = 0
  firstError: string | undefined
  t0 = 0
  tEnd = 0
  active = 0
  done: () => void = () => {}

  constructor(
    pool: Pool,
    opts: LoadOptions,
    keys: { next: number },
    bound: { phase: LoadProgress['phase']; durationMs?: number; count?: number },
  ) {
    this.pool = pool
    this.opts = opts
    this.keys = keys
    this.kind = bound.phase
    this.method = opts.op === 'put' ? 'PUT' : 'GET'
    this.body = opts.op === 'put' && opts.size > 0 ? putBody(opts.size) : null
    this.host = new URL(opts.endpoint).host
    this.pathPrefix = `/${encodePath(opts.bucket)}/${encodePath(opts.keyPrefix)}-${opts.size}-`
    // A fixed set of keys: their paths are made once, and their signatures reused.
    this.paths = opts.objects
      ? Array.from({ length: opts.objects }, (_, n) => `${this.pathPrefix}${n}`)
      : undefined
    this.signer = opts.credentials
      ? createSigner(opts.credentials, opts.region ?? 'us-east-1', {
          reuse: this.paths !== undefined,
        })
      : undefined
    this.count = bound.count ?? Number.POSITIVE_INFINITY
    this.durationMs = bound.durationMs ?? Number.POSITIVE_INFINITY
    const slots = Number.isFinite(this.count)
      ? this.count
      : Math.ceil(((bound.durationMs ?? 1000) / 1000) * SLOTS_PER_SECOND)
    this.lat = new Float64Array(Math.max(16, Math.min(slots, 1 << 22)))
  }

  /** The path of the next request: round-robin over `objects`, else a new key. */
  nextPath(): string {
    const n = this.keys.next++
    return this.paths ? this.paths[n % this.paths.length]! : `${this.pathPrefix}${n}`
  }

  /** Whether a worker may issue another request. */
  more(now: number): boolean {
    return this.issued < this.count && now - this.t0 < this.durationMs
  }

  record(ms: number, bytes: number): void {
    if (this.ops === this.lat.length) {
      const grown = new Float64Array(this.lat.length * 2)
      grown.set(this.lat)
      this.lat = grown
    }
    this.lat[this.ops++] = ms
    this.bytes += bytes
  }

  fail(message: string): void {
    this.errors++
    this.firstError ??= message.slice(0, MAX_FIRST_ERROR)
  }

  progress(): LoadProgress {
    return {
      phase: this.kind,
      ops: this.ops,
      errors: this.errors,
      bytes: this.bytes,
      elapsedMs: performance.now() - this.t0,
      ...(Number.isFinite(this.count) ? { total: this.count } : {}),
    }
  }
}

/**
 * A worker: one request in flight at a time, the next issued from the completion of the last.
 * It is its own undici handler. We use undici's older handler interface (onConnect/onHeaders/
 * onData/onComplete/onError), which undici's HTTP/1 client calls directly: the newer one is an
 * adapter around it that parses every response's headers into an object.
 */
class Worker {
  readonly p: Phase
  start = 0
  status = 0
  got = 0
  errText = ''

  constructor(p: Phase) {
    this.p = p
  }

  /** Issues the next request, or retires the worker. */
  next(): void {
    const p = this.p
    const now = performance.now()
    if (!p.more(now)) {
      if (--p.active === 0) {
        p.tEnd = now
        p.done()
      }
      return
    }
    p.issued++
    const path = p.nextPath()
    this.start = now
    this.status = 0
    this.got = 0
    this.errText = ''
    try {
      p.pool.dispatch(
        {
          path,
          method: p.method,
          headers: p.signer ? p.signer.headers(p.method, p.host, path) : ['host', p.host],
          body: p.body,
        },
        this,
      )
    } catch (err) {
      p.fail(String(err))
      queueMicrotask(() => this.next())
    }
  }

  onConnect(): void {}

  onHeaders(status: number): boolean {
    this.status = status
    return true
  }

  onData(chunk: Buffer): boolean {
    this.got += chunk.length
    if (this.status >= 300 && this.errText.length < MAX_FIRST_ERROR)
      this.errText += chunk.toString('latin1', 0, MAX_FIRST_ERROR)
    return true
  }

  onComplete(): void {
    const p = this.p
    const ms = performance.now() - this.start
    if (this.status < 200 || this.status >= 300) {
      p.fail(`${p.method} ${this.status}: ${this.errText}`)
    } else if (p.method === 'GET' && this.got !== p.opts.size) {
      p.fail(`GET body of ${this.got} bytes, expected ${p.opts.size}`)
    } else {
      p.record(ms, p.method === 'GET' ? this.got : p.opts.size)
    }
    this.next()
  }

  onError(err: Error): void {
    this.p.fail(`${this.p.method}: ${err.message}`)
    // After a transport error undici may still be unwinding this request: continue later.
    queueMicrotask(() => this.next())
  }
}

async function phase(
  pool: Pool,
  opts: LoadOptions,
  keys: { next: number },
  bound: { phase: LoadProgress['phase']; durationMs?: number; count?: number },
): Promise<LoadResult> {
  const p = new Phase(pool, opts, keys, bound)
  const workers = Array.from({ length: Math.max(1, opts.concurrency) }, () => new Worker(p))
  const finished = new Promise<void>((ok) => {
    p.done = ok
  })
  const ticker = opts.onProgress
    ? setInterval(() => opts.onProgress!(p.progress()), 500)
    : undefined
  p.active = workers.length
  p.t0 = performance.now()
  for (const w of workers) w.next()
  await finished
  if (ticker) clearInterval(ticker)
  opts.onProgress?.(p.progress())

  const seconds = (p.tEnd - p.t0) / 1000
  const lat = p.lat.subarray(0, p.ops).sort()
  return {
    ops: p.ops,
    bytes: p.bytes,
    seconds,
    opsPerSec: p.ops / seconds,
    mbps: p.bytes / seconds / 1e6,
    p50ms: percentile(lat, 0.5),
    p99ms: percentile(lat, 0.99),
    errors: p.errors,
    ...(p.firstError === undefined ? {} : { firstError: p.firstError }),
  }
}

/** Nearest-rank percentile of sorted values (NaN if there are none). */
function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!
}

// ---------------------------------------------------------------------------------------------
// AWS Signature Version 4, header auth, for S3 path-style requests without a query.

/** Signs requests with one set of credentials; see {@link createSigner}. */
export interface Signer {
  /**
   * The request headers for `method` on `path` (already URI-encoded, as sent) at `host`
   * (`127.0.0.1:9000`), as a flat [name, value, …] list: host, x-amz-content-sha256
   * (UNSIGNED-PAYLOAD), x-amz-date and authorization. The list may be shared with other calls
   * within the same second: do not modify it.
   */
  headers(method: string, host: string, path: string, now?: Date): string[]
}

const ALGORITHM = 'AWS4-HMAC-SHA256'
const UNSIGNED = 'UNSIGNED-PAYLOAD'
const SIGNED_HEADERS = 'host;x-amz-content-sha256;x-amz-date'

/**
 * A SigV4 signer. The signing key is derived once per day; the headers of a given
 * (method, host, path) are computed once per second (x-amz-date has one-second resolution, so
 * within a second the signature is the same anyway).
 */
export function createSigner(
  credentials: Credentials,
  region: string,
  opts: {
    /** Keep each second's headers for reuse (default true); off when every path is new. */
    reuse?: boolean
  } = {},
): Signer {
  const reuse = opts.reuse ?? true
  let day = ''
  let key: Buffer = Buffer.alloc(0)
  let scope = ''
  let second = -1
  let amzDate = ''
  let cache = new Map<string, string[]>()
  return {
    headers(method, host, path, now) {
      const ms = now ? now.getTime() : Date.now()
      const s = Math.floor(ms / 1000)
      if (s !== second) {
        second = s
        amzDate = `${new Date(s * 1000).toISOString().slice(0, 19).replace(/[-:]/g, '')}Z`
        cache = new Map()
        if (amzDate.slice(0, 8) !== day) {
          day = amzDate.slice(0, 8)
          scope = `${day}/${region}/s3/aws4_request`
          key = signingKey(credentials.secretAccessKey, day, region)
        }
      }
      const id = reuse ? `${method} ${host}${path}` : ''
      let headers = reuse ? cache.get(id) : undefined
      if (headers === undefined) {
        const canonical = [
          method,
          path,
          '', // no query
          `host:${host}`,
          `x-amz-content-sha256:${UNSIGNED}`,
          `x-amz-date:${amzDate}`,
          '',
          SIGNED_HEADERS,
          UNSIGNED,
        ].join('\n')
        const toSign = `${ALGORITHM}\n${amzDate}\n${scope}\n${hash('sha256', canonical, 'hex')}`
        const signature = createHmac('sha256', key).update(toSign).digest('hex')
        const auth = `${ALGORITHM} Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${SIGNED_HEADERS}, Signature=${signature}`
        headers = [
          'host',
          host,
          'x-amz-content-sha256',
          UNSIGNED,
          'x-amz-date',
          amzDate,
          'authorization',
          auth,
        ]
        if (reuse) cache.set(id, headers)
      }
      return headers
    },
  }
}

/** The SigV4 signing key of a secret for one day (`YYYYMMDD`) and region, service s3. */
export function signingKey(secret: string, day: string, region: string): Buffer {
  const h = (k: string | Buffer, v: string): Buffer => createHmac('sha256', k).update(v).digest()
  return h(h(h(h(`AWS4${secret}`, day), region), 's3'), 'aws4_request')
}

/** URI-encodes an S3 key or bucket as SigV4 wants it: RFC 3986 unreserved kept, `/` kept. */
export function encodePath(s: string): string {
  return encodeURIComponent(s)
    .replace(/%2F/g, '/')
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
}
