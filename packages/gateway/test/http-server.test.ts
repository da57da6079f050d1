// The uWS front end on its own: a large answer streamed to a client that reads slowly, so the
// socket pushes back many times and every chunk after the first waits for onWritable.
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { connect } from 'node:net'
import { promisify } from 'node:util'
import t from 'tap'
import { listenHttp } from '../src/http/server.ts'

const run = promisify(execFile)
const MiB = 1024 * 1024

t.test('a streamed answer finishes under backpressure with nothing else going on', async (t) => {
  // The chunks are ready at once: after each wait for onWritable the next write only needs
  // promise reactions to run. When they were left for uWS's callback to run, the answer
  // stalled until some unrelated event woke Node (here: never, so curl timed out).
  const chunks = Array.from({ length: 24 }, (_, i) => Buffer.alloc(MiB, i + 1))
  const total = chunks.length * MiB
  const want = createHash('sha256')
  for (const c of chunks) want.update(c)
  const server = await listenHttp({
    host: '127.0.0.1',
    port: 0,
    handler: async (_req, res) => {
      res.header('content-type', 'application/octet-stream')
      await res.stream(
        (async function* () {
          for (const c of chunks) yield c
        })(),
        total,
      )
    },
  })
  t.teardown(() => server.close())

  const { stdout } = await run(
    'curl',
    [
      '--silent',
      '--show-error',
      '--limit-rate',
      '16M',
      '--max-time',
      '20',
      '--output',
      '-',
      `http://127.0.0.1:${server.port}/big`,
    ],
    { encoding: 'buffer', maxBuffer: 2 * total },
  )
  t.equal(stdout.length, total, 'every byte arrived')
  t.equal(
    createHash('sha256').update(stdout).digest('hex'),
    want.digest('hex'),
    'the bytes are the ones sent, in order',
  )
})

t.test("a request's signal aborts when the client goes away, read before or after", async (t) => {
  // The signal is made on first use; a client gone before that must still read as aborted.
  const seen = new Map<string, (aborted: boolean) => void>()
  const outcome = (path: string) => new Promise<boolean>((resolve) => seen.set(path, resolve))
  const server = await listenHttp({
    host: '127.0.0.1',
    port: 0,
    handler: async (req) => {
      if (req.rawPath === '/before') {
        const signal = req.signal
        const aborted = await new Promise<boolean>((resolve) => {
          signal.addEventListener('abort', () => resolve(true))
          setTimeout(() => resolve(false), 5000)
        })
        seen.get(req.rawPath)?.(aborted)
      } else {
        await new Promise((r) => setTimeout(r, 500))
        seen.get(req.rawPath)?.(req.signal.aborted)
      }
    },
  })
  t.teardown(() => server.close())
  for (const path of ['/before', '/after']) {
    const result = outcome(path)
    const socket = connect(server.port, '127.0.0.1')
    await once(socket, 'connect')
    socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)
    await new Promise((r) => setTimeout(r, 100))
    socket.destroy()
    t.equal(await result, true, `${path}: aborted`)
  }
})
