/* Design notes

The HTTP edge on uWebSockets.js. uWS hands over a request only for the duration of the route
callback, so everything is copied out at once into a plain {@link Request}; the body arrives in
onData callbacks whose ArrayBuffers are neutered when the callback returns, so each chunk is
copied once into a Buffer the rest of the gateway may keep.

Backpressure both ways:
- Upload: received chunks wait in a queue the handler pulls from; above BODY_HIGH_WATER_BYTES
  the socket is paused (res.pause), and resumed when the handler has drained it below half of
  that. A slow drive slows the encoder, which slows the pull, which pauses the client.
- Download: each chunk goes out with tryEnd; when the socket's buffer is full, the next chunk
  waits for onWritable, so a slow client slows the reads from the drives.

The response object must not be touched after the client went away (onAborted): every write
goes through {@link Response}, which checks and corks.
*/

import uws from 'uWebSockets.js'
import { donateStripe } from '@tessera/codec'

/** Bytes of request body buffered before the client is paused. */
export const BODY_HIGH_WATER_BYTES = 4 * 1024 * 1024

/** A request, copied out of uWS. */
export interface Request {
  method: string
  /** The path as sent (percent-encoded). */
  rawPath: string
  /** The raw query string, without '?'. */
  query: string
  /** Lower-case header names; repeated headers joined with ','. */
  headers: Record<string, string>
  remoteAddress: string
  body: RequestBody
  /**
   * Aborted when the client goes away. Made on first use: an AbortSignal costs more to create
   * than the rest of a small GET's request object, and most requests never look at it.
   */
  readonly signal: AbortSignal
}

/** A Request whose signal is made on first use (see Request.signal). */
class UwsRequest implements Request {
  readonly method: string
  readonly rawPath: string
  readonly query: string
  readonly headers: Record<string, string>
  readonly remoteAddress: string
  readonly body: RequestBody
  #abort: AbortController | undefined
  #gone = false
  constructor(
    method: string,
    rawPath: string,
    query: string,
    headers: Record<string, string>,
    remoteAddress: string,
    body: RequestBody,
  ) {
    this.method = method
    this.rawPath = rawPath
    this.query = query
    this.headers = headers
    this.remoteAddress = remoteAddress
    this.body = body
  }

  get signal(): AbortSignal {
    if (this.#abort === undefined) {
      this.#abort = new AbortController()
      if (this.#gone) this.#abort.abort()
    }
    return this.#abort.signal
  }

  /** @internal from onAborted */
  gone(): void {
    this.#gone = true
    this.#abort?.abort()
  }
}

/** The request body as an async iterable of owned Buffers, with flow control to the socket. */
export class RequestBody implements AsyncIterable<Buffer> {
  #chunks: Buffer[] = []
  #buffered = 0
  #ended = false
  #error: Error | undefined
  #wake: (() => void) | undefined
  #paused = false
  #res: uws.HttpResponse
  #taken = false
  #stripes: { fill: number; size: number } | undefined
  #cur: Buffer | undefined
  #curLen = 0
  #firstFill: number | undefined
  /** Set by discard(): the rest of the body is dropped as it arrives. */
  #discarding = false
  /** Bytes received so far. */
  received = 0

  constructor(res: uws.HttpResponse) {
    this.#res = res
  }

  /**
   * From now on, gathers the body into fresh buffers of `size` bytes holding `fill` bytes each
   * (the last one less), donated to the erasure encoder, which takes them as stripes: the
   * body's bytes are then copied once in JavaScript, from uWS's buffer into the stripe.
   */
  stripes(fill: number, size: number): void {
    if (this.#stripes || this.#ended) return
    // Bytes already queued as plain chunks come first; the first stripe is cut short so that
    // every later one starts at a block boundary, where the encoder can take it whole.
    this.#stripes = { fill, size }
    this.#firstFill = fill - (this.received % fill)
  }

  /** @internal from onData */
  push(ab: ArrayBuffer, isLast: boolean): void {
    if (this.#discarding) {
      // The answer may be out already: uWS must not be paused any more (its response is gone),
      // so what still arrives is counted and dropped.
      this.received += ab.byteLength
      if (isLast) this.#ended = true
      this.#wakeUp()
      return
    }
    if (ab.byteLength > 0) {
      this.received += ab.byteLength
      if (this.#stripes) this.#gather(new Uint8Array(ab))
      else {
        const b = Buffer.copyBytesFrom(new Uint8Array(ab))
        this.#chunks.push(b)
        this.#buffered += b.length
      }
    }
    if (isLast) {
      if (this.#cur !== undefined && this.#curLen > 0) this.#queue(this.#curLen)
      this.#ended = true
    }
    if (!this.#ended && !this.#paused && this.#buffered + this.#curLen > BODY_HIGH_WATER_BYTES) {
      this.#paused = true
      this.#res.pause()
    }
    this.#wakeUp()
  }

  #gather(src: Uint8Array): void {
    const { fill, size } = this.#stripes!
    let at = 0
    while (at < src.length) {
      if (this.#cur === undefined) {
        this.#cur = Buffer.from(new ArrayBuffer(size))
        this.#curLen = 0
      }
      const want = this.#firstFill ?? fill
      const n = Math.min(src.length - at, want - this.#curLen)
      this.#cur.set(src.subarray(at, at + n), this.#curLen)
      this.#curLen += n
      at += n
      if (this.#curLen === want) {
        this.#firstFill = undefined
        this.#queue(want)
      }
    }
  }

  #queue(length: number): void {
    const cur = this.#cur!
    donateStripe(cur.buffer as ArrayBuffer)
    this.#chunks.push(cur.subarray(0, length))
    this.#buffered += length
    this.#cur = undefined
    this.#curLen = 0
  }

  /** @internal from onAborted */
  fail(err: Error): void {
    this.#error = err
    this.#wakeUp()
  }

  #wakeUp(): void {
    const w = this.#wake
    this.#wake = undefined
    w?.()
  }

  get ended(): boolean {
    return this.#ended
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    if (this.#taken) throw new Error('the request body can be read only once')
    this.#taken = true
    for (;;) {
      if (this.#chunks.length > 0) {
        const c = this.#chunks.shift()!
        this.#buffered -= c.length
        if (this.#paused && this.#buffered < BODY_HIGH_WATER_BYTES / 2 && !this.#error) {
          this.#paused = false
          this.#res.cork(() => this.#res.resume())
        }
        yield c
        continue
      }
      if (this.#error) throw this.#error
      if (this.#ended) return
      await new Promise<void>((r) => (this.#wake = r))
    }
  }

  /** Reads the whole body, refusing more than `max` bytes (for XML and form bodies). */
  async readAll(max: number, tooLarge: () => Error): Promise<Buffer> {
    const parts: Buffer[] = []
    let n = 0
    for await (const c of this) {
      n += c.length
      if (n > max) throw tooLarge()
      parts.push(c)
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts)
  }

  /** Drops whatever is left of the body (after an early error answer). */
  discard(): void {
    this.#discarding = true
    this.#chunks = []
    this.#buffered = 0
    this.#cur = undefined
    this.#curLen = 0
    if (this.#paused) {
      this.#paused = false
      this.#res.cork(() => this.#res.resume())
    }
  }
}

/** A response: status and headers first, then one body (whole, streamed, or none). */
export class Response {
  #res: uws.HttpResponse
  #aborted = false
  #done = false
  #headers: [string, string][] = []
  #status = '200 OK'
  #onAbort: (() => void)[] = []
  /** The chunk a send waits to get written, while the socket has backpressure. */
  #blocked: { chunk: Uint8Array; start: number; total: number; resolve: () => void } | undefined
  #writableHooked = false
  /** Bytes of body sent, for the access log. */
  bytesSent = 0
  statusCode = 200

  constructor(res: uws.HttpResponse) {
    this.#res = res
  }

  /** @internal from onAborted */
  abort(): void {
    this.#aborted = true
    for (const f of this.#onAbort) f()
  }

  get aborted(): boolean {
    return this.#aborted
  }

  get finished(): boolean {
    return this.#done
  }

  status(code: number): this {
    this.statusCode = code
    this.#status = `${code} ${STATUS_TEXT[code] ?? ''}`.trimEnd()
    return this
  }

  header(name: string, value: string | number): this {
    this.#headers.push([name, String(value)])
    return this
  }

  /** Sets a header, replacing any value given before (case-insensitive). */
  setHeader(name: string, value: string | number): this {
    const lower = name.toLowerCase()
    this.#headers = this.#headers.filter(([k]) => k.toLowerCase() !== lower)
    return this.header(name, value)
  }

  #writeHead(): void {
    this.#res.writeStatus(this.#status)
    for (const [k, v] of this.#headers) this.#res.writeHeader(k, v)
  }

  /** Sends a whole body (or none). */
  end(body?: string | Uint8Array): void {
    if (this.#aborted || this.#done) return
    this.#done = true
    const b = body === undefined ? undefined : typeof body === 'string' ? Buffer.from(body) : body
    this.bytesSent = b?.length ?? 0
    this.#res.cork(() => {
      this.#writeHead()
      this.#res.end(b)
    })
  }

  /** Answers without a body, with the Content-Length the body would have (HEAD). */
  endWithoutBody(contentLength?: number): void {
    if (this.#aborted || this.#done) return
    this.#done = true
    // uWS's endWithoutBody(length) leaves this uWS build expecting a body on a kept-alive
    // connection (the next request hangs up); writing the header ourselves does not.
    if (contentLength !== undefined) this.#headers.push(['Content-Length', String(contentLength)])
    this.#res.cork(() => {
      this.#writeHead()
      this.#res.endWithoutBody()
    })
  }

  /**
   * Streams exactly `total` bytes from `body`, waiting for the socket to drain between
   * chunks. Throws when the client went away or the body came up short (the connection is then
   * closed, so the client sees a truncated answer, never a wrong one).
   */
  async stream(body: AsyncIterable<Uint8Array>, total: number): Promise<void> {
    if (this.#aborted || this.#done) return
    if (total === 0) {
      this.end()
      return
    }
    let headWritten = false
    let sent = 0
    try {
      for await (const chunk of body) {
        if (this.#aborted) throw new Error('the client went away')
        await this.#send(chunk, total, !headWritten)
        headWritten = true
        sent += chunk.length
        this.bytesSent = sent
      }
    } catch (err) {
      if (!this.#aborted && !this.#done) {
        this.#done = true
        this.#res.cork(() => this.#res.close())
      }
      throw err
    }
    if (sent !== total && !this.#aborted && !this.#done) {
      this.#done = true
      this.#res.cork(() => this.#res.close())
      throw new Error(`the body had ${sent} of ${total} bytes`)
    }
    this.#done = true
  }

  #send(chunk: Uint8Array, total: number, withHead: boolean): Promise<void> {
    let ok = false
    let done = false
    const start = this.#res.getWriteOffset()
    this.#res.cork(() => {
      if (withHead) this.#writeHead()
      ;[ok, done] = this.#res.tryEnd(chunk, total)
    })
    if (ok || done) return Promise.resolve()
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.#blocked = undefined
        reject(new Error('the client went away'))
      }
      this.#onAbort.push(onAbort)
      this.#blocked = {
        chunk,
        start,
        total,
        resolve: () => {
          this.#onAbort = this.#onAbort.filter((f) => f !== onAbort)
          resolve()
        },
      }
      if (!this.#writableHooked) {
        this.#writableHooked = true
        this.#res.onWritable(this.#onWritable)
      }
    })
  }

  /**
   * uWS keeps one writable handler per response, registered once; it retries whatever chunk
   * is blocked now. The waiting send resumes from a Node task (setImmediate), not from inside
   * uWS's callback: promise reactions queued there are not run until Node itself next runs a
   * callback, and with nothing else to do (the next block already read) the answer stalled.
   */
  readonly #onWritable = (offset: number): boolean => {
    const b = this.#blocked
    if (b === undefined) return true
    const [ok, done] = this.#res.tryEnd(b.chunk.subarray(offset - b.start), b.total)
    if (ok || done) {
      this.#blocked = undefined
      setImmediate(b.resolve)
    }
    return ok
  }

  /** Closes the connection at once (after a broken stream). */
  close(): void {
    if (this.#aborted || this.#done) return
    this.#done = true
    this.#res.cork(() => this.#res.close())
  }
}

export type Handler = (req: Request, res: Response) => Promise<void>

export interface HttpServerInit {
  host?: string
  port: number
  handler: Handler
  /** Called when a handler throws after the answer started (the connection is closed). */
  onError?: (err: unknown) => void
}

export interface HttpServer {
  port: number
  close(): void
}

/** Starts a uWS server that hands every request to `handler`. */
export function listenHttp(init: HttpServerInit): Promise<HttpServer> {
  const app = uws.App()
  app.any('/*', (res, r) => {
    const headers: Record<string, string> = {}
    r.forEach((k, v) => {
      headers[k] = headers[k] === undefined ? v : `${headers[k]},${v}`
    })
    const response = new Response(res)
    const body = new RequestBody(res)
    const req = new UwsRequest(
      r.getMethod().toUpperCase(),
      r.getUrl(),
      r.getQuery() ?? '',
      headers,
      Buffer.from(res.getRemoteAddressAsText()).toString(),
      body,
    )
    res.onAborted(() => {
      response.abort()
      body.fail(new Error('the client went away'))
      req.gone()
    })
    res.onData((ab, isLast) => body.push(ab, isLast))
    init.handler(req, response).catch((err) => {
      init.onError?.(err)
      response.close()
    })
  })
  return new Promise((resolve, reject) => {
    app.listen(init.host ?? '0.0.0.0', init.port, (socket) => {
      if (!socket) {
        reject(new Error(`cannot listen on ${init.host ?? '0.0.0.0'}:${init.port}`))
        return
      }
      resolve({
        port: uws.us_socket_local_port(socket as unknown as uws.us_socket),
        close: () => {
          uws.us_listen_socket_close(socket)
        },
      })
    })
  })
}

const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  201: 'Created',
  204: 'No Content',
  206: 'Partial Content',
  301: 'Moved Permanently',
  303: 'See Other',
  304: 'Not Modified',
  307: 'Temporary Redirect',
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  411: 'Length Required',
  412: 'Precondition Failed',
  413: 'Payload Too Large',
  416: 'Requested Range Not Satisfiable',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  503: 'Service Unavailable',
}
