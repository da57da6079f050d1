/**
 * The S3 load generator: PUTs, GETs, HEADs, DELETEs or LISTs (or a weighted mix of them) at a
 * fixed concurrency against an S3 endpoint, and reports ops/s, MB/s and latency percentiles,
 * per operation and over time. The core of `pnpm bench:load` (load.ts), of the S3 benchmark and
 * of the suite (against the gateway and the HTTP ceiling side by side).
 *
 * The client must cost as little CPU as it can, because on a 2-core machine it shares the CPU
 * with the server it measures:
 * - undici's low-level `dispatch` on a Pool with one connection per worker (keep-alive, no
 *   pipelining), with one reusable handler object per worker: no streams, no promises, no
 *   header objects per request;
 * - PUT bodies are views of one preallocated random buffer (written to the socket as they are,
 *   never copied), GET bodies are counted and dropped: client memory stays at that one buffer
 *   whatever the size × concurrency;
 * - AWS SigV4 by the aws4 library (sigv4.ts: header auth, `UNSIGNED-PAYLOAD`), and for a fixed
 *   set of keys (GET, HEAD, LIST) the headers of a request reused within the second that its
 *   x-amz-date names;
 * - latencies go to preallocated Float64Arrays, sorted once at the end.
 *
 * Objects are named `<keyPrefix>-<size>-<n>`: the HTTP ceiling reads the size from the key.
 */
import { createHash, randomFillSync } from 'node:crypto'
import { Pool } from 'undici'
import { progressView } from './progress.ts'
import {
  type Credentials,
  canonicalQuery,
  createSigner,
  encodePath,
  type PayloadDigests,
  type Signer,
} from './sigv4.ts'

export {
  type Credentials,
  canonicalQuery,
  createSigner,
  encodePath,
  type Signer,
} from './sigv4.ts'

/** Where the objects are. */
export interface Target {
  /** Origin of the S3 endpoint, e.g. `http://127.0.0.1:9000` (path-style URLs are used). */
  endpoint: string
  credentials?: Credentials
  /** SigV4 region. Default `us-east-1`. */
  region?: string
  bucket: string
  /** HTTPS: accept any certificate (a self-signed test endpoint). */
  insecure?: boolean
}

/** One S3 operation. LIST is one ListObjectsV2 page of the run's keys. */
export type OpKind = 'put' | 'get' | 'head' | 'delete' | 'list'
export const OP_KINDS: readonly OpKind[] = ['put', 'get', 'head', 'delete', 'list']

/** Progress of a run, reported about twice a second (and at the end of each phase). */
export interface LoadProgress {
  phase: 'prepare' | 'warmup' | 'run' | 'cleanup'
  /** Operations completed successfully in this phase so far. */
  ops: number
  errors: number
  /** Payload bytes moved by the completed operations. */
  bytes: number
  elapsedMs: number
  /** Operations this phase will issue, when bounded by a count. */
  total?: number
}

/** One load run: one operation (or a mix), one object size, one concurrency. */
export interface LoadOptions extends Target {
  /** `mixed` picks each request's operation at random, weighted by {@link LoadOptions.mix}. */
  op: OpKind | 'mixed'
  /** Object size in bytes (PUT bodies; GETs check it). */
  size: number
  /** Requests in flight at once (and connections). */
  concurrency: number
  /**
   * Stop issuing requests after this long (those in flight complete and count). Default 3000,
   * unless `count` is given. Large objects at high concurrency take a while per request: give
   * such runs a duration of several request latencies, or a `minCount`.
   */
  durationMs?: number
  /** Stop after issuing this many requests (instead of, or as well as, `durationMs`). */
  count?: number
  /** Keep issuing past `durationMs` until this many requests have been issued. */
  minCount?: number
  /** Objects are named `<keyPrefix>-<size>-<n>`; LIST lists `<keyPrefix>-<size>-`. */
  keyPrefix: string
  /**
   * GET, HEAD, LIST, DELETE and mixed (required): how many objects {@link prepareObjects}
   * created. GET and HEAD read them round-robin, DELETE deletes each once, mixed starts from
   * them as its pool. PUT (optional): overwrite keys 0…objects-1 round-robin instead of writing
   * a new key each time.
   */
  objects?: number
  /**
   * Mixed: the weight of each operation (`{ get: 60, put: 30, delete: 10 }`, the default).
   * GET and HEAD read a random object of the pool, PUT writes a new key and adds it to the pool
   * once done, DELETE removes a random object that no request is reading from the pool first.
   */
  mix?: Partial<Record<OpKind, number>>
  /**
   * PUT: sign each body's SHA-256 and send its Content-MD5, as `aws s3 cp` does over http (the
   * server then verifies both), instead of UNSIGNED-PAYLOAD. The digests are computed once: every
   * PUT of a run sends the same bytes.
   */
  signPayload?: boolean
  /** LIST: keys per page (max-keys). Default 1000. */
  listMaxKeys?: number
  /**
   * An untimed phase first, same load, so that connections are open and the code is hot.
   * Default: a fifth of the duration, at most 1000 ms; 0 for count-bounded runs.
   */
  warmupMs?: number
  /** Width of the time series' intervals. Default: a 50th of the duration, 100…1000 ms. */
  intervalMs?: number
  onProgress?: (p: LoadProgress) => void
  /** Aborting it stops the issuing of requests (those in flight complete and count). */
  signal?: AbortSignal
}

/** What was measured of one operation (or of all of a run's operations together). */
export interface OpStats {
  /** Successful operations. */
  ops: number
  /** Payload bytes of the successful operations (GET: as counted on the wire; LIST: 0). */
  bytes: number
  opsPerSec: number
  /** Payload MB/s, MB = 1e6 bytes. */
  mbps: number
  /** Latency percentiles of the successful operations, request issued → response complete. */
  p50ms: number
  p90ms: number
  p99ms: number
  /** Failed operations: transport errors, non-2xx answers, GET bodies of the wrong size. */
  errors: number
  firstError?: string
  /** LIST: keys returned per page (median KeyCount). */
  keysPerList?: number
}

/** What a load run measured (its timed phase only). */
export interface LoadResult extends OpStats {
  /** From the first request issued to the last response completed. */
  seconds: number
  /** The same figures per operation (one entry for a single-operation run). */
  byOp: Partial<Record<OpKind, OpStats>>
  /** Completions per interval of the run, per operation: the throughput over time. */
  series: {
    intervalMs: number
    ops: Partial<Record<OpKind, number[]>>
    bytes: Partial<Record<OpKind, number[]>>
  }
  /** Every key this run (warm-up included) may have written is below `<keyPrefix>-<size>-<keysUsed>`. */
  keysUsed: number
}

/** The name of object `n` of a run: what the HTTP ceiling parses the size from. */
export function objectKey(keyPrefix: string, size: number, n: number): string {
  return `${keyPrefix}-${size}-${n}`
}

/** The default weights of a mixed run. */
export const DEFAULT_MIX: Readonly<Partial<Record<OpKind, number>>> = {
  get: 60,
  put: 30,
  delete: 10,
}

/** Runs one load phase (after an optional warm-up phase) and measures it. */
export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  if (opts.op !== 'put' && !(opts.objects && opts.objects > 0))
    throw new Error(`runLoad: a ${opts.op} run needs \`objects\` (see prepareObjects)`)
  const durationMs = opts.durationMs ?? (opts.count === undefined ? 3000 : undefined)
  const warmupMs = opts.warmupMs ?? (durationMs === undefined ? 0 : Math.min(1000, durationMs / 5))
  const pool = newPool(opts, opts.concurrency)
  try {
    // PUTs continue numbering keys after the warm-up's (and after a mixed run's pool), so they
    // always write new keys; the mixed pool carries over from the warm-up.
    const keys = newKeys(opts)
    if (warmupMs > 0) {
      await phase(pool, opts, keys, { phase: 'warmup', durationMs: warmupMs })
    }
    return await phase(pool, opts, keys, {
      phase: 'run',
      durationMs,
      count: opts.count,
      minCount: opts.minCount,
    })
  } finally {
    await pool.close()
  }
}

/**
 * Creates objects 0…count-1 of `size` for a GET, HEAD, LIST or mixed run (PUTs at
 * `concurrency`, default 8), with a progress view on stderr unless `onProgress` is given.
 * Throws if any PUT failed.
 */
export async function prepareObjects(
  opts: Target & {
    size: number
    count: number
    keyPrefix: string
    concurrency?: number
    onProgress?: (p: LoadProgress) => void
    /** Show no progress at all (when there is no `onProgress`). */
    quiet?: boolean
  },
): Promise<void> {
  const concurrency = Math.min(opts.concurrency ?? 8, opts.count)
  const view =
    opts.onProgress || opts.quiet
      ? undefined
      : progressView(
          `upload ${opts.count} × ${formatBytes(opts.size)}`,
          { total: opts.count },
          { bytes: true },
        )
  const r = await countedPhase(
    { ...opts, op: 'put', concurrency, onProgress: opts.onProgress ?? view?.update },
    opts.count,
    'prepare',
  ).finally(() => view?.stop())
  if (r.errors > 0) {
    throw new Error(
      `prepareObjects: ${r.errors} of ${opts.count} PUTs failed, first: ${r.firstError}`,
    )
  }
}

/**
 * Deletes objects 0…count-1 (DELETEs at `concurrency`, default 16), with a progress view on
 * stderr unless `quiet`. Returns the number of failed DELETEs (a missing key is no failure).
 */
export async function deleteObjects(
  opts: Target & {
    size: number
    count: number
    keyPrefix: string
    concurrency?: number
    quiet?: boolean
  },
): Promise<{ errors: number; firstError?: string }> {
  if (opts.count <= 0) return { errors: 0 }
  const concurrency = Math.min(opts.concurrency ?? 16, opts.count)
  const view = opts.quiet
    ? undefined
    : progressView(`cleanup ${opts.count} objects`, { total: opts.count })
  const r = await countedPhase(
    { ...opts, op: 'delete', objects: opts.count, concurrency, onProgress: view?.update },
    opts.count,
    'cleanup',
  ).finally(() => view?.stop())
  return { errors: r.errors, ...(r.firstError === undefined ? {} : { firstError: r.firstError }) }
}

async function countedPhase(
  opts: LoadOptions,
  count: number,
  kind: LoadProgress['phase'],
): Promise<LoadResult> {
  const pool = newPool(opts, opts.concurrency)
  try {
    return await phase(pool, opts, newKeys(opts), { phase: kind, count })
  } finally {
    await pool.close()
  }
}

/** Creates the bucket (PUT /<bucket>); a bucket that already exists and is ours is fine. */
export async function createBucket(target: Target): Promise<void> {
  const res = await s3Request(target, 'PUT', `/${encodePath(target.bucket)}`)
  if (res.status >= 300 && !res.text.includes('BucketAlreadyOwnedByYou'))
    throw new Error(`createBucket ${target.bucket}: ${res.status} ${s3ErrorText(res.text)}`)
}

/** One signed request with a small answer (bucket operations, checks): status and body text. */
export async function s3Request(
  target: Target,
  method: string,
  path: string,
  query: Readonly<Record<string, string>> = {},
): Promise<{ status: number; text: string }> {
  const host = new URL(target.endpoint).host
  const q = canonicalQuery(query)
  const signer = target.credentials
    ? createSigner(target.credentials, target.region ?? 'us-east-1')
    : undefined
  const pool = newPool(target, 1)
  try {
    const res = await pool.request({
      path: q ? `${path}?${q}` : path,
      method: method as 'GET',
      headers: signer ? signer.headers(method, host, path, q) : ['host', host],
    })
    return { status: res.statusCode, text: await res.body.text() }
  } finally {
    await pool.close()
  }
}

/** An S3 error document as `Code: Message`, or the start of any other answer. */
export function s3ErrorText(text: string): string {
  const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1]
  const message = /<Message>([^<]*)<\/Message>/.exec(text)?.[1]
  return code ? `${code}${message ? `: ${message}` : ''}` : text.slice(0, 300)
}

/** `4096` → `4KiB`, `16777216` → `16MiB`: sizes as the tables and charts name them. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let u = 0
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024
    u++
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)}${units[u]}`
}

// ---------------------------------------------------------------------------------------------
// The engine.

function newPool(target: Target, connections: number): Pool {
  return new Pool(target.endpoint, {
    connections,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    keepAliveMaxTimeout: 600_000,
    // A 64 MiB PUT at concurrency 32 against a slow server waits long for its answer.
    headersTimeout: 300_000,
    bodyTimeout: 300_000,
    ...(target.insecure ? { connect: { rejectUnauthorized: false } } : {}),
  })
}

/** The SHA-256 (hex) and MD5 (base64) of a body, once per distinct body. */
const digestCache = new WeakMap<Buffer, PayloadDigests>()
function payloadDigests(body: Buffer): PayloadDigests {
  let d = digestCache.get(body)
  if (d === undefined) {
    d = {
      sha256: createHash('sha256').update(body).digest('hex'),
      md5: createHash('md5').update(body).digest('base64'),
    }
    digestCache.set(body, d)
  }
  return d
}

/** One preallocated random buffer for every PUT body, grown to the largest size asked for. */
let putData = Buffer.alloc(0)
function putBody(size: number): Buffer {
  if (putData.length < size) putData = randomFillSync(Buffer.allocUnsafeSlow(size))
  return putData.subarray(0, size)
}

/** Initial latency slots per second of a duration-bounded run (the arrays grow if needed). */
const SLOTS_PER_SECOND = 20_000
const MAX_FIRST_ERROR = 300
/** Bytes of a LIST answer kept to read its KeyCount. */
const LIST_HEAD = 4096
const KEY_COUNT = /<KeyCount>(\d+)<\/KeyCount>/

const KIND_INDEX: Record<OpKind, number> = { put: 0, get: 1, head: 2, delete: 3, list: 4 }
const METHODS = ['PUT', 'GET', 'HEAD', 'DELETE', 'GET'] as const
const PUT = 0
const GET = 1
const HEAD = 2
const DELETE = 3
const LIST = 4

/**
 * Key numbering shared by a run's phases: the next new key, and a mixed run's pool of keys that
 * exist (with how many requests are reading each).
 */
interface Keys {
  next: number
  live: number[]
  reading: Map<number, number>
}

function newKeys(opts: LoadOptions): Keys {
  const objects = opts.objects ?? 0
  return {
    next: opts.op === 'mixed' ? objects : 0,
    live: opts.op === 'mixed' ? Array.from({ length: objects }, (_, i) => i) : [],
    reading: new Map(),
  }
}

/** The measurements of one operation kind in one phase. */
class Stats {
  lat: Float64Array
  n = 0
  bytes = 0
  errors = 0
  firstError: string | undefined
  /** LIST: KeyCount of each page. */
  listed: number[] = []
  seriesOps: number[] = []
  seriesBytes: number[] = []

  constructor(slots: number) {
    this.lat = new Float64Array(slots)
  }

  record(ms: number, bytes: number, bucket: number): void {
    if (this.n === this.lat.length) {
      const grown = new Float64Array(Math.max(16, this.lat.length * 2))
      grown.set(this.lat)
      this.lat = grown
    }
    this.lat[this.n++] = ms
    this.bytes += bytes
    while (this.seriesOps.length <= bucket) {
      this.seriesOps.push(0)
      this.seriesBytes.push(0)
    }
    this.seriesOps[bucket]!++
    this.seriesBytes[bucket]! += bytes
  }

  fail(message: string): void {
    this.errors++
    this.firstError ??= message.slice(0, MAX_FIRST_ERROR)
  }
}

interface Bound {
  phase: LoadProgress['phase']
  durationMs?: number | undefined
  count?: number | undefined
  minCount?: number | undefined
}

/** The shared state of one phase; each worker keeps one request in flight. */
class Phase {
  readonly pool: Pool
  readonly opts: LoadOptions
  readonly body: Buffer | null
  readonly digests: PayloadDigests | undefined
  readonly host: string
  readonly signer: Signer | undefined
  readonly keys: Keys
  /** The paths of the fixed set of keys (GET, HEAD, DELETE, PUT with `objects`). */
  readonly paths: string[] | undefined
  readonly pathPrefix: string
  readonly listPath: string
  readonly listQuery: string
  /** The single operation of the phase, or -1 for a mix. */
  readonly single: number
  /** Mixed: cumulative weights by kind index, and their total. */
  readonly cumulative: number[]
  readonly totalWeight: number
  /** Workers issue requests until this many ms have passed since t0 (and minCount issued). */
  readonly durationMs: number
  readonly count: number
  readonly minCount: number
  readonly intervalMs: number
  readonly kind: LoadProgress['phase']
  readonly stats: Stats[]
  issued = 0
  t0 = 0
  tEnd = 0
  active = 0
  done: () => void = () => {}

  constructor(pool: Pool, opts: LoadOptions, keys: Keys, bound: Bound) {
    this.pool = pool
    this.opts = opts
    this.keys = keys
    this.kind = bound.phase
    this.single = opts.op === 'mixed' ? -1 : KIND_INDEX[opts.op]
    const mix = opts.op === 'mixed' ? (opts.mix ?? DEFAULT_MIX) : {}
    let sum = 0
    this.cumulative = OP_KINDS.map((k) => {
      sum += mix[k] ?? 0
      return sum
    })
    this.totalWeight = sum
    if (opts.op === 'mixed' && !(sum > 0)) throw new Error('runLoad: the mix has no weight')
    const writes = opts.op === 'put' || (opts.op === 'mixed' && (mix.put ?? 0) > 0)
    this.body = writes && opts.size > 0 ? putBody(opts.size) : null
    this.digests =
      writes && opts.signPayload ? payloadDigests(this.body ?? Buffer.alloc(0)) : undefined
    this.host = new URL(opts.endpoint).host
    const prefix = `${opts.keyPrefix}-${opts.size}-`
    this.pathPrefix = `/${encodePath(opts.bucket)}/${encodePath(prefix)}`
    this.listPath = `/${encodePath(opts.bucket)}`
    this.listQuery = canonicalQuery({
      'list-type': '2',
      'max-keys': String(opts.listMaxKeys ?? 1000),
      prefix,
    })
    // A fixed set of keys: their paths are made once, and their signatures reused.
    this.paths =
      opts.objects && opts.op !== 'mixed' && opts.op !== 'list'
        ? Array.from({ length: opts.objects }, (_, n) => `${this.pathPrefix}${n}`)
        : undefined
    this.signer = opts.credentials
      ? createSigner(opts.credentials, opts.region ?? 'us-east-1', {
          reuse: opts.op !== 'put' || this.paths !== undefined,
        })
      : undefined
    this.count = bound.count ?? Number.POSITIVE_INFINITY
    this.minCount = bound.minCount ?? 0
    this.durationMs = bound.durationMs ?? Number.POSITIVE_INFINITY
    this.intervalMs =
      opts.intervalMs ??
      (bound.durationMs === undefined
        ? 1000
        : Math.round(Math.min(1000, Math.max(100, bound.durationMs / 50))))
    const slots = Number.isFinite(this.count)
      ? this.count
      : Math.ceil(((bound.durationMs ?? 1000) / 1000) * SLOTS_PER_SECOND)
    const perKind = Math.max(16, Math.min(slots, 1 << 20))
    // Latency slots for the operations this phase issues (a mix may fall back to PUT).
    this.stats = OP_KINDS.map(
      (k, i) =>
        new Stats(
          this.single === i || (this.single === -1 && ((mix[k] ?? 0) > 0 || i === PUT))
            ? perKind
            : 0,
        ),
    )
  }

  /** Whether a worker may issue another request. */
  more(now: number): boolean {
    if (this.issued >= this.count || this.opts.signal?.aborted) return false
    return now - this.t0 < this.durationMs || this.issued < this.minCount
  }

  /** Chooses the next request of worker `w`: sets its kind, key and path. */
  plan(w: Worker): void {
    let kind = this.single
    if (kind === -1) {
      const r = Math.random() * this.totalWeight
      kind = 0
      while (this.cumulative[kind]! <= r) kind++
    }
    w.query = ''
    w.key = -1
    if (kind === LIST) {
      w.kind = LIST
      w.path = this.listPath
      w.query = this.listQuery
      return
    }
    if (this.paths) {
      const n = this.keys.next++
      w.kind = kind
      w.path = this.paths[n % this.paths.length]!
      return
    }
    if (this.single === -1) {
      const keys = this.keys
      if (kind === GET || kind === HEAD || kind === DELETE) {
        const key = kind === DELETE ? this.idleKey() : this.anyKey()
        if (key >= 0) {
          w.kind = kind
          w.key = key
          if (kind !== DELETE) keys.reading.set(key, (keys.reading.get(key) ?? 0) + 1)
          w.path = `${this.pathPrefix}${key}`
          return
        }
        // No object to read or delete: write one instead.
        kind = PUT
      }
    }
    // PUT of a new key.
    w.kind = kind
    w.key = this.keys.next++
    w.path = `${this.pathPrefix}${w.key}`
  }

  /** A random key of the pool, or -1 if it is empty. */
  anyKey(): number {
    const live = this.keys.live
    return live.length === 0 ? -1 : live[Math.floor(Math.random() * live.length)]!
  }

  /** A random key of the pool that no request reads, taken out of the pool; -1 if none. */
  idleKey(): number {
    const live = this.keys.live
    for (let tries = 0; tries < 8 && live.length > 0; tries++) {
      const i = Math.floor(Math.random() * live.length)
      const key = live[i]!
      if (this.keys.reading.has(key)) continue
      live[i] = live[live.length - 1]!
      live.pop()
      return key
    }
    return -1
  }

  /** A mixed run's bookkeeping once a request on `key` has completed. */
  settle(kind: number, key: number, ok: boolean): void {
    if (key < 0 || this.single !== -1) return
    if (kind === PUT) {
      if (ok) this.keys.live.push(key)
    } else if (kind === GET || kind === HEAD) {
      const n = this.keys.reading.get(key)!
      if (n <= 1) this.keys.reading.delete(key)
      else this.keys.reading.set(key, n - 1)
    }
  }

  bucket(now: number): number {
    return Math.floor((now - this.t0) / this.intervalMs)
  }

  progress(): LoadProgress {
    let ops = 0
    let errors = 0
    let bytes = 0
    for (const s of this.stats) {
      ops += s.n
      errors += s.errors
      bytes += s.bytes
    }
    return {
      phase: this.kind,
      ops,
      errors,
      bytes,
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
  kind = 0
  key = -1
  path = ''
  query = ''
  start = 0
  status = 0
  got = 0
  /** The start of an error answer, or of a LIST answer. */
  text = ''

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
    p.plan(this)
    const method = METHODS[this.kind]!
    this.start = now
    this.status = 0
    this.got = 0
    this.text = ''
    try {
      p.pool.dispatch(
        {
          path: this.query ? `${this.path}?${this.query}` : this.path,
          method,
          headers: p.signer
            ? p.signer.headers(
                method,
                p.host,
                this.path,
                this.query,
                undefined,
                this.kind === PUT ? p.digests : undefined,
              )
            : ['host', p.host],
          body: this.kind === PUT ? p.body : null,
        },
        this,
      )
    } catch (err) {
      this.failed(String(err))
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
    const keep = this.status >= 300 ? MAX_FIRST_ERROR : this.kind === LIST ? LIST_HEAD : 0
    if (this.text.length < keep) this.text += chunk.toString('latin1', 0, keep)
    return true
  }

  onComplete(): void {
    const p = this.p
    const now = performance.now()
    const ms = now - this.start
    const method = METHODS[this.kind]!
    const s = p.stats[this.kind]!
    if (this.status < 200 || this.status >= 300) {
      this.failed(`${method} ${this.status}: ${s3ErrorText(this.text)}`)
    } else if (this.kind === GET && this.got !== p.opts.size) {
      this.failed(`GET body of ${this.got} bytes, expected ${p.opts.size}`)
    } else if (this.kind === LIST) {
      const m = KEY_COUNT.exec(this.text)
      if (m) {
        s.listed.push(Number(m[1]))
        s.record(ms, 0, p.bucket(now))
        p.settle(this.kind, this.key, true)
      } else this.failed(`LIST answer without a KeyCount: ${this.text.slice(0, 200)}`)
    } else {
      s.record(
        ms,
        this.kind === GET ? this.got : this.kind === PUT ? p.opts.size : 0,
        p.bucket(now),
      )
      p.settle(this.kind, this.key, true)
    }
    this.next()
  }

  onError(err: Error): void {
    this.failed(`${METHODS[this.kind]}: ${err.message}`)
    // After a transport error undici may still be unwinding this request: continue later.
    queueMicrotask(() => this.next())
  }

  failed(message: string): void {
    this.p.stats[this.kind]!.fail(message)
    this.p.settle(this.kind, this.key, false)
  }
}

async function phase(pool: Pool, opts: LoadOptions, keys: Keys, bound: Bound): Promise<LoadResult> {
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
  const byOp: Partial<Record<OpKind, OpStats>> = {}
  const seriesOps: Partial<Record<OpKind, number[]>> = {}
  const seriesBytes: Partial<Record<OpKind, number[]>> = {}
  const sorted: Float64Array[] = []
  OP_KINDS.forEach((k, i) => {
    const s = p.stats[i]!
    if (s.n === 0 && s.errors === 0) return
    const lat = s.lat.subarray(0, s.n).sort()
    sorted.push(lat)
    byOp[k] = {
      ...stats(lat, s.bytes, seconds, s.errors, s.firstError),
      ...(i === LIST && s.listed.length > 0 ? { keysPerList: medianInt(s.listed) } : {}),
    }
    seriesOps[k] = s.seriesOps
    seriesBytes[k] = s.seriesBytes
  })
  const all = sorted.length === 1 ? sorted[0]! : concatSorted(sorted)
  const firstError = Object.values(byOp).find((o) => o.firstError)?.firstError
  const total = stats(
    all,
    p.stats.reduce((n, s) => n + s.bytes, 0),
    seconds,
    p.stats.reduce((n, s) => n + s.errors, 0),
    firstError,
  )
  return {
    ...total,
    ...(byOp.list?.keysPerList === undefined ? {} : { keysPerList: byOp.list.keysPerList }),
    seconds,
    byOp,
    series: { intervalMs: p.intervalMs, ops: seriesOps, bytes: seriesBytes },
    keysUsed: p.paths ? p.paths.length : Math.max(keys.next, opts.objects ?? 0),
  }
}

function stats(
  sortedLat: Float64Array,
  bytes: number,
  seconds: number,
  errors: number,
  firstError: string | undefined,
): OpStats {
  return {
    ops: sortedLat.length,
    bytes,
    opsPerSec: sortedLat.length / seconds,
    mbps: bytes / seconds / 1e6,
    p50ms: percentile(sortedLat, 0.5),
    p90ms: percentile(sortedLat, 0.9),
    p99ms: percentile(sortedLat, 0.99),
    errors,
    ...(firstError === undefined ? {} : { firstError }),
  }
}

function concatSorted(parts: readonly Float64Array[]): Float64Array {
  const out = new Float64Array(parts.reduce((n, a) => n + a.length, 0))
  let at = 0
  for (const a of parts) {
    out.set(a, at)
    at += a.length
  }
  return out.sort()
}

function medianInt(values: number[]): number {
  const s = [...values].sort((a, b) => a - b)
  return s[s.length >> 1]!
}

/** Nearest-rank percentile of sorted values (NaN if there are none). */
export function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!
}
