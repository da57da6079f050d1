/**
 * The "HTTP ceiling" of the S3 benchmark: a uWebSockets.js server that does the least an S3
 * server can do. PUT reads the body and discards it, then answers 200 with an ETag; GET answers
 * with bytes of an in-memory buffer, whose size is encoded in the key (`…-<size>-<n>`, as
 * s3-load.ts names objects); a GET of a bucket (a LIST) answers a ListObjectsV2 page of as many
 * made-up keys as were PUT under the prefix (at most max-keys), built once. It checks no signature. What the gateway reaches against it
 * (`vsCeiling`) is the share of this machine's HTTP throughput that the gateway achieves.
 *
 * Run as a child process: `node bench/dist/http-ceiling.js --port 0` prints `{"listening":port}`
 * on stdout (`--host` defaults to 127.0.0.1). With `--exit-with-stdin` it exits when its stdin
 * closes, so that it dies with the benchmark: {@link startCeiling} starts it so.
 */

import type { us_socket } from 'uWebSockets.js'
import { spawn } from 'node:child_process'
import { randomFillSync } from 'node:crypto'
import { once } from 'node:events'
import { resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const MAIN = fileURLToPath(import.meta.url)
/** The size of an object from its key: `obj-4096-17` → 4096. */
const KEY_SIZE = /-(\d+)-\d+$/
/** A key's prefix up to its number, and the number: `/b/obj-4096-17` → `/b/obj-4096-`, 17. */
const KEY_NUMBER = /^(.*-)(\d+)$/
/** A bucket's path, `/bench` or `/bench/`: a GET of it is a LIST. */
const BUCKET_ONLY = /^\/[^/]+\/?$/
/** Larger sizes are refused, so that a mistyped key cannot make us allocate gigabytes. */
const MAX_SIZE = 1024 * 1024 * 1024
/** A fixed S3-style ETag (the MD5 of nothing): PUT computes no hash. */
const ETAG = '"d41d8cd98f00b204e9800998ecf8427e"'

/** A running ceiling server. */
export interface Ceiling {
  /** `http://127.0.0.1:<port>` */
  endpoint: string
  pid: number
  /** Stops the server process and waits for it to exit. */
  stop(): Promise<void>
}

/** Starts the ceiling server in a child process; `execArgv` are extra node flags. */
export async function startCeiling(opts: { execArgv?: string[] } = {}): Promise<Ceiling> {
  const child = spawn(
    process.execPath,
    [...(opts.execArgv ?? []), MAIN, '--port', '0', '--exit-with-stdin'],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  )
  const exited = once(child, 'exit')
  const lines = createInterface({ input: child.stdout! })
  const first = new Promise<string>((ok, fail) => {
    lines.once('line', ok)
    exited.then(([code]) => fail(new Error(`http-ceiling exited (${code}) before listening`)), fail)
  })
  let port: number
  try {
    port = (JSON.parse(await first) as { listening: number }).listening
  } catch (err) {
    child.kill('SIGKILL')
    throw err
  }
  lines.close()
  return {
    endpoint: `http://127.0.0.1:${port}`,
    pid: child.pid!,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGTERM')
      await exited
    },
  }
}

/** The server itself (only in the child process: uWS is loaded here and nowhere else). */
async function serve(host: string, port: number, exitWithStdin: boolean): Promise<void> {
  const { default: uWS } = await import('uWebSockets.js')
  // One buffer for every GET, grown to the largest size asked for; its bytes are random so that
  // nothing along the way can compress them.
  let store = Buffer.alloc(0)
  const body = (size: number): Buffer => {
    if (store.length < size) store = randomFillSync(Buffer.allocUnsafeSlow(size))
    return store.subarray(0, size)
  }
  let requests = 0
  /** The number of keys written under each `/<bucket>/<prefix>-<size>-` (the highest n + 1). */
  const written = new Map<string, number>()
  const pages = new Map<string, string>()
  const listPage = (
    bucket: string,
    prefix: string,
    maxKeys: number,
    counts: Map<string, number>,
  ): string => {
    const have = counts.get(`/${bucket.replace(/^\/|\/$/g, '')}/${prefix}`) ?? 0
    const max = Number.isInteger(maxKeys) ? maxKeys : 1000
    const n = Math.max(0, Math.min(1000, max, have))
    const id = `${bucket}\u0000${prefix}\u0000${n}`
    let page = pages.get(id)
    if (page === undefined) {
      const size = /-(\d+)-$/.exec(prefix)?.[1] ?? '0'
      const xml = (t: string) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;')
      const entries = Array.from(
        { length: n },
        (_, i) =>
          `<Contents><Key>${xml(prefix)}${i}</Key><LastModified>2025-01-01T00:00:00.000Z</LastModified><ETag>${ETAG.replace(/"/g, '&quot;')}</ETag><Size>${size}</Size><StorageClass>STANDARD</StorageClass></Contents>`,
      )
      page =
        '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
        `<Name>${xml(bucket.replace(/^\/|\/$/g, ''))}</Name><Prefix>${xml(prefix)}</Prefix><KeyCount>${n}</KeyCount>` +
        `<MaxKeys>${max}</MaxKeys><IsTruncated>${have > n}</IsTruncated>${entries.join('')}</ListBucketResult>`
      if (pages.size > 64) pages.clear()
      pages.set(id, page)
    }
    return page
  }

  const app = uWS.App().any('/*', (res, req) => {
    const method = req.getMethod().toLowerCase()
    const url = req.getUrl()
    const id = (++requests).toString(16)
    if (method === 'put' || method === 'post') {
      // Answer once the whole body has been read; uWS hands us each chunk and then reuses it.
      let aborted = false
      res.onAborted(() => {
        aborted = true
      })
      // Count the keys of each prefix, so that a LIST answers as many as were written.
      const k = KEY_NUMBER.exec(url)
      if (k) {
        const prefix = decodeURIComponent(k[1]!)
        written.set(prefix, Math.max(written.get(prefix) ?? 0, Number(k[2]) + 1))
      }
      res.onData((_chunk, isLast) => {
        if (!isLast || aborted) return
        res.cork(() => {
          res.writeStatus('200 OK').writeHeader('ETag', ETAG).writeHeader('x-amz-request-id', id)
          res.end()
        })
      })
      return
    }
    if (method !== 'get' && method !== 'head') {
      res.writeStatus('200 OK').writeHeader('x-amz-request-id', id).end()
      return
    }
    if (method === 'get' && BUCKET_ONLY.test(url)) {
      // A ListObjectsV2 page (list-type=2): max-keys entries named after the prefix, made once.
      const q = new URLSearchParams(req.getQuery() ?? '')
      res
        .writeStatus('200 OK')
        .writeHeader('x-amz-request-id', id)
        .writeHeader('Content-Type', 'application/xml')
        .end(listPage(url, q.get('prefix') ?? '', Number(q.get('max-keys') ?? 1000), written))
      return
    }
    const m = KEY_SIZE.exec(url)
    const size = m ? Number(m[1]) : -1
    if (size < 0 || size > MAX_SIZE) {
      res
        .writeStatus('404 Not Found')
        .writeHeader('x-amz-request-id', id)
        .writeHeader('Content-Type', 'application/xml')
        .end('<Error><Code>NoSuchKey</Code></Error>')
      return
    }
    res
      .writeStatus('200 OK')
      .writeHeader('ETag', ETAG)
      .writeHeader('x-amz-request-id', id)
      .writeHeader('Content-Type', 'application/octet-stream')
    if (method === 'head') {
      // This uWS does not count endWithoutBody as having answered: without an abort handler it
      // would abort the process.
      res.onAborted(() => {})
      res.endWithoutBody(size)
      return
    }
    // As uWS's VideoStreamer example: write what the socket takes now, the rest each time it
    // drains (tryEnd never queues what the kernel refuses, so memory stays at the one buffer).
    const data = body(size)
    const [, done] = res.tryEnd(data, size)
    if (done) return
    res.onAborted(() => {})
    res.onWritable((offset) => res.tryEnd(data.subarray(offset), size)[0])
  })

  const listening = await new Promise<number>((ok, fail) => {
    app.listen(host, port, (socket) => {
      // A listen socket is a socket to uSockets; the typings know only the narrower use.
      if (socket) ok(uWS.us_socket_local_port(socket as unknown as us_socket))
      else fail(new Error(`http-ceiling: cannot listen on ${host}:${port}`))
    })
  })
  if (exitWithStdin) {
    process.stdin.on('end', () => process.exit(0))
    process.stdin.resume()
  }
  process.on('SIGTERM', () => process.exit(0))
  process.stdout.write(`${JSON.stringify({ listening })}\n`)
}

if (resolve(process.argv[1] ?? '') === MAIN) {
  const arg = (name: string, dflt: string): string => {
    const i = process.argv.indexOf(name)
    return i > 0 ? (process.argv[i + 1] ?? dflt) : dflt
  }
  await serve(
    arg('--host', '127.0.0.1'),
    Number(arg('--port', '0')),
    process.argv.includes('--exit-with-stdin'),
  )
}
