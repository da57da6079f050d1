/**
 * Decoder for `Content-Encoding: aws-chunked` request bodies: the framing S3 clients use to
 * stream an upload whose hash they cannot know up front.
 *
 * Design notes
 *
 * A body is a series of chunks, then a final empty chunk, then (trailer modes) trailing
 * headers and an empty line:
 *
 *     signed:    <hex-size>;chunk-signature=<64 hex>\r\n<data>\r\n … 0;chunk-signature=<sig>\r\n
 *     unsigned:  <hex-size>\r\n<data>\r\n … 0\r\n
 *     then:      [name:value\r\n …] [x-amz-trailer-signature:<sig>\r\n] \r\n
 *
 * Each chunk signature signs 'AWS4-HMAC-SHA256-PAYLOAD', the request time, the scope, the
 * previous signature (the request's seed signature for the first chunk), the hash of the empty
 * string and the hash of the chunk's data; the trailer signature signs
 * 'AWS4-HMAC-SHA256-TRAILER', time, scope, the final chunk's signature and the hash of the
 * trailing headers, each as 'name:value\n'.
 *
 * The parser is a byte-level state machine, so input may be split anywhere. Chunk data is
 * passed on as views of the input and hashed piece by piece; only header and trailer lines
 * (bounded by MAX_LINE_BYTES) are copied. The price: the bytes of a chunk are yielded before
 * its signature (which follows the data) can be checked, so a consumer must not commit what it
 * received until decode() has finished without throwing.
 *
 * Errors follow S3. Any framing fault (bad size line, missing CRLF, truncation) is
 * IncompleteBody 'The request body terminated unexpectedly': that is what S3 answers for all of
 * them (versitygw checked each case against AWS, versity/versitygw#1666 and #1685; MinIO
 * answers a non-S3 'BadRequest' instead). A decoded length different from
 * x-amz-decoded-content-length is IncompleteBody with NumberBytesExpected/NumberBytesProvided,
 * both when short and when long (versity/versitygw#1684). A bad chunk or trailer signature is
 * SignatureDoesNotMatch. Trailers S3 rejects as MalformedTrailerError, a code the gateway's table
 * lacks, are InvalidRequest with S3's message.
 */
import { createHash, type Hash } from 'node:crypto'
import { S3Error } from '../s3/errors.ts'
import { amzDate, EMPTY_SHA256, hmac, type SigV4Auth, signaturesEqual } from './sigv4.ts'

/** Options of {@link AwsChunkedDecoder}. */
export interface AwsChunkedInit {
  /** The framing, from the request's `x-amz-content-sha256`. */
  mode: 'streaming-signed' | 'streaming-signed-trailer' | 'streaming-unsigned-trailer'
  /** The verified request; required for the signed modes (signing key, date, scope, seed). */
  auth?: SigV4Auth
  /** `x-amz-decoded-content-length`: the payload length, in bytes, the body must decode to. */
  decodedLength?: number
  /** Trailer names the request announced in `x-amz-trailer`, lower-case. */
  expectTrailers?: string[]
  /** Largest chunk size accepted, in bytes; default 16 MiB. */
  maxChunkBytes?: number
  /** Smallest data chunk but the last (S3: 8192); lower only in tests of the framing. */
  minChunkBytes?: number
}

/** Smallest data chunk S3 accepts, but for the last one. */
export const MIN_CHUNK_BYTES = 8192

/** Default bound on one declared chunk, as in MinIO: clients use 64 KiB to 1 MiB. */
export const DEFAULT_MAX_CHUNK_BYTES = 16 * 1024 * 1024

/** Longest chunk header or trailer line, CRLF included (MinIO's bound too). */
const MAX_LINE_BYTES = 4096

/** Most trailing headers accepted; clients send one checksum. */
const MAX_TRAILERS = 16

const TRAILER_SIGNATURE = 'x-amz-trailer-signature'

type State = 'header' | 'data' | 'data-end' | 'trailer' | 'done'

/** Streaming decoder of one aws-chunked body. */
export class AwsChunkedDecoder {
  readonly #mode: AwsChunkedInit['mode']
  readonly #signed: boolean
  readonly #decodedLength: number | undefined
  readonly #expect: ReadonlySet<string>
  readonly #maxChunkBytes: number
  readonly #minChunkBytes: number
  readonly #key: Buffer | undefined
  readonly #accessKeyId: string
  /** 'AWS4-HMAC-SHA256-PAYLOAD\n<time>\n<scope>\n' and the trailer equivalent. */
  readonly #chunkPrefix: string
  readonly #trailerPrefix: string

  #state: State = 'header'
  readonly #line = Buffer.allocUnsafe(MAX_LINE_BYTES)
  #lineLength = 0
  /** Data bytes still to come in the current chunk. */
  #remaining = 0
  /** CRLF bytes already seen after the current chunk's data. */
  #crlfSeen = 0
  #hash: Hash | undefined
  #providedSignature = ''
  #previousSignature: string
  #chunks = 0
  #currentSize = 0
  /** Sum of the declared chunk sizes so far. */
  #declared = 0
  /** Declared size of the chunk before this one. */
  #previousSize: number | undefined
  /** Payload bytes passed on so far. */
  #decoded = 0
  readonly #trailers = new Map<string, string>()
  #trailerSignature: string | undefined
  #started = false

  constructor(init: AwsChunkedInit) {
    const modes = ['streaming-signed', 'streaming-signed-trailer', 'streaming-unsigned-trailer']
    if (!modes.includes(init.mode)) throw new TypeError(`unknown aws-chunked mode ${init.mode}`)
    this.#mode = init.mode
    this.#signed = init.mode !== 'streaming-unsigned-trailer'
    if (this.#signed && init.auth === undefined) {
      throw new TypeError(`aws-chunked mode ${init.mode} needs the request's SigV4Auth`)
    }
    const max = init.maxChunkBytes ?? DEFAULT_MAX_CHUNK_BYTES
    if (!Number.isSafeInteger(max) || max < 1) {
      throw new TypeError(`invalid maxChunkBytes ${max}: use a positive integer`)
    }
    const length = init.decodedLength
    if (length !== undefined && (!Number.isSafeInteger(length) || length < 0)) {
      throw new TypeError(`invalid decodedLength ${length}: use a non-negative integer`)
    }
    this.#maxChunkBytes = max
    this.#minChunkBytes = init.minChunkBytes ?? MIN_CHUNK_BYTES
    this.#decodedLength = length
    this.#expect = new Set((init.expectTrailers ?? []).map((name) => name.trim().toLowerCase()))
    const auth = init.auth
    this.#key = auth?.signingKey
    this.#accessKeyId = auth?.accessKeyId ?? ''
    this.#previousSignature = auth?.signature ?? ''
    const scope = auth ? `${amzDate(auth.date)}\n${auth.scope}\n` : ''
    this.#chunkPrefix = `AWS4-HMAC-SHA256-PAYLOAD\n${scope}`
    this.#trailerPrefix = `AWS4-HMAC-SHA256-TRAILER\n${scope}`
  }

  /**
   * Decodes a body stream: yields the payload bytes (views of the input, never copies),
   * verifies every chunk signature, the final chunk and the trailer (and its signature in
   * 'streaming-signed-trailer' mode), and checks the decoded length. Throws S3Error:
   * SignatureDoesNotMatch for a bad chunk or trailer signature, IncompleteBody for a truncated
   * or malformed body or a wrong decoded length, InvalidRequest for a malformed trailer or a
   * chunk over `maxChunkBytes`.
   *
   * Bytes are yielded before the signature of their chunk is checked (it can only be checked
   * at the chunk's end): treat the upload as failed unless this generator completes.
   */
  async *decode(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    if (this.#started) throw new TypeError('AwsChunkedDecoder.decode() may be called only once')
    this.#started = true
    for await (const piece of source) {
      let pos = 0
      while (pos < piece.length) {
        switch (this.#state) {
          case 'data': {
            const n = Math.min(this.#remaining, piece.length - pos)
            const view = piece.subarray(pos, pos + n)
            pos += n
            this.#remaining -= n
            this.#decoded += n
            this.#hash?.update(view)
            yield view
            if (this.#remaining === 0) {
              if (this.#signed) this.#verifyChunk()
              this.#state = 'data-end'
            }
            break
          }
          case 'data-end': {
            const want = this.#crlfSeen === 0 ? 0x0d : 0x0a
            if (piece[pos] !== want) {
              throw framing(
                `the data of chunk ${this.#chunks} is not followed by CRLF; is its declared size ${this.#currentSize} right?`,
              )
            }
            pos++
            if (++this.#crlfSeen === 2) {
              this.#crlfSeen = 0
              this.#state = 'header'
            }
            break
          }
          case 'header':
          case 'trailer': {
            const lf = piece.indexOf(0x0a, pos)
            const end = lf < 0 ? piece.length : lf + 1
            this.#append(piece, pos, end)
            pos = end
            if (lf >= 0) {
              const line = this.#takeLine()
              if (this.#state === 'header') this.#onChunkHeader(line)
              else this.#onTrailerLine(line)
            }
            break
          }
          case 'done':
            throw framing('there are bytes after the end of the aws-chunked body')
        }
      }
    }
    this.#finish()
  }

  /** Trailing headers received (lower-case names → values); complete once decode() finished. */
  get trailers(): Record<string, string> {
    return Object.fromEntries(this.#trailers)
  }

  #append(piece: Uint8Array, from: number, to: number): void {
    const n = to - from
    if (this.#lineLength + n > MAX_LINE_BYTES) {
      throw framing(
        `a ${this.#state === 'header' ? 'chunk header' : 'trailer'} line is longer than ${MAX_LINE_BYTES} bytes`,
      )
    }
    this.#line.set(piece.subarray(from, to), this.#lineLength)
    this.#lineLength += n
  }

  /** The line collected so far, which ends in LF, without its CRLF. */
  #takeLine(): string {
    const length = this.#lineLength
    this.#lineLength = 0
    if (length < 2 || this.#line[length - 2] !== 0x0d) {
      throw framing(
        `a ${this.#state === 'header' ? 'chunk header' : 'trailer'} line ends in LF without CR`,
      )
    }
    return this.#line.toString('latin1', 0, length - 2)
  }

  #onChunkHeader(line: string): void {
    const m = this.#signed
      ? /^([0-9a-fA-F]{1,16});chunk-signature=([0-9a-fA-F]{64})$/.exec(line)
      : /^([0-9a-fA-F]{1,16})$/.exec(line)
    if (m === null) {
      const expected = this.#signed ? '<hex-size>;chunk-signature=<signature>' : '<hex-size>'
      throw framing(`chunk ${this.#chunks + 1} has the header ${quote(line)}, expected ${expected}`)
    }
    const size = Number.parseInt(m[1] ?? '', 16)
    // As in S3: every data chunk but the last carries at least 8 KiB.
    if (size > 0 && this.#previousSize !== undefined && this.#previousSize < this.#minChunkBytes) {
      throw new S3Error('InvalidChunkSizeError', undefined, {
        Chunk: String(this.#chunks),
        BadChunkSize: String(this.#previousSize),
      })
    }
    this.#previousSize = size
    this.#chunks++
    if (size > this.#maxChunkBytes) {
      throw new S3Error(
        'InvalidRequest',
        `Chunk ${this.#chunks} declares ${size} bytes; this server accepts aws-chunked chunks of at most ${this.#maxChunkBytes} bytes.`,
      )
    }
    this.#declared += size
    if (this.#decodedLength !== undefined && this.#declared > this.#decodedLength) {
      throw lengthMismatch(this.#decodedLength, this.#declared)
    }
    this.#currentSize = size
    if (this.#signed) {
      this.#providedSignature = m[2] ?? ''
      this.#hash = createHash('sha256')
    }
    if (size === 0) {
      if (this.#signed) this.#verifyChunk()
      this.#state = 'trailer'
    } else {
      this.#remaining = size
      this.#state = 'data'
    }
  }

  #verifyChunk(): void {
    const digest = this.#hash?.digest('hex') ?? EMPTY_SHA256
    this.#hash = undefined
    const stringToSign = `${this.#chunkPrefix}${this.#previousSignature}\n${EMPTY_SHA256}\n${digest}`
    this.#previousSignature = this.#check(stringToSign, this.#providedSignature)
  }

  /** Checks a signature over `stringToSign` and returns it (the next chunk chains to it). */
  #check(stringToSign: string, provided: string): string {
    const computed = hmac(this.#key ?? Buffer.alloc(0), stringToSign).toString('hex')
    if (!signaturesEqual(computed, provided)) {
      throw new S3Error('SignatureDoesNotMatch', undefined, {
        AWSAccessKeyId: this.#accessKeyId,
        StringToSign: stringToSign,
        SignatureProvided: provided,
      })
    }
    return computed
  }

  #onTrailerLine(line: string): void {
    if (line === '') {
      this.#endTrailer()
      this.#state = 'done'
      return
    }
    if (this.#mode === 'streaming-signed') {
      throw framing(`the final chunk is followed by ${quote(line)} instead of an empty line`)
    }
    if (this.#trailerSignature !== undefined) {
      throw malformedTrailer(`${quote(line)} follows ${TRAILER_SIGNATURE}`)
    }
    const colon = line.indexOf(':')
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    if (colon <= 0 || name === '') throw malformedTrailer(`${quote(line)} is not name:value`)
    if (name === TRAILER_SIGNATURE) {
      if (this.#mode !== 'streaming-signed-trailer') {
        throw malformedTrailer(`${TRAILER_SIGNATURE} in an unsigned body`)
      }
      this.#trailerSignature = value
      return
    }
    if (!this.#expect.has(name)) {
      throw malformedTrailer(`the trailer ${name} was not announced in x-amz-trailer`)
    }
    if (this.#trailers.has(name)) throw malformedTrailer(`the trailer ${name} is repeated`)
    if (this.#trailers.size >= MAX_TRAILERS) {
      throw malformedTrailer(`more than ${MAX_TRAILERS} trailers`)
    }
    this.#trailers.set(name, value)
  }

  #endTrailer(): void {
    const missing = [...this.#expect].filter((name) => !this.#trailers.has(name))
    if (missing.length > 0) {
      throw malformedTrailer(
        `the trailer ${missing.join(', ')} announced in x-amz-trailer is missing`,
      )
    }
    if (this.#mode !== 'streaming-signed-trailer') return
    if (this.#trailerSignature === undefined) {
      // Nothing unsigned was received when there were no trailers at all.
      if (this.#trailers.size === 0) return
      throw malformedTrailer(`${TRAILER_SIGNATURE} is missing`)
    }
    let canonical = ''
    for (const [name, value] of this.#trailers) canonical += `${name}:${value}\n`
    const hash = createHash('sha256').update(canonical).digest('hex')
    this.#check(`${this.#trailerPrefix}${this.#previousSignature}\n${hash}`, this.#trailerSignature)
  }

  /** Whether every announced trailer (and, when signed, the trailer signature) has arrived. */
  #trailerComplete(): boolean {
    if (this.#trailers.size < this.#expect.size) return false
    return (
      this.#mode !== 'streaming-signed-trailer' ||
      this.#trailers.size === 0 ||
      this.#trailerSignature !== undefined
    )
  }

  #finish(): void {
    if (this.#state === 'trailer' && this.#lineLength === 0 && this.#trailerComplete()) {
      // Clients may end the body right after the final chunk or the last trailer line without
      // the closing empty line (the JS SDK's "0\r\n" with no checksum); nothing is missing.
      this.#endTrailer()
      this.#state = 'done'
    }
    if (this.#state !== 'done') {
      throw framing(
        this.#state === 'data'
          ? `it ends ${this.#remaining} bytes before the end of chunk ${this.#chunks}`
          : this.#state === 'trailer'
            ? 'it ends inside the trailer'
            : 'it ends before the final chunk',
      )
    }
    if (this.#decodedLength !== undefined && this.#decoded !== this.#decodedLength) {
      throw lengthMismatch(this.#decodedLength, this.#decoded)
    }
  }
}

function framing(detail: string): S3Error {
  return new S3Error('IncompleteBody', `The request body terminated unexpectedly: ${detail}.`)
}

function lengthMismatch(expected: number, provided: number): S3Error {
  return new S3Error(
    'IncompleteBody',
    'You did not provide the number of bytes specified by the x-amz-decoded-content-length HTTP header.',
    { NumberBytesExpected: String(expected), NumberBytesProvided: String(provided) },
  )
}

function malformedTrailer(detail: string): S3Error {
  return new S3Error(
    'MalformedTrailerError',
    `The request contained trailing data that was not well-formed or did not conform to our published schema: ${detail}.`,
  )
}

/** A line for an error message: quoted, escaped and cut short. */
function quote(line: string): string {
  return JSON.stringify(line.length > 80 ? `${line.slice(0, 80)}…` : line)
}
