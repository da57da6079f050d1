/**
 * Serves the web console's built files (packages/console, a Vite build) under
 * {@link CONSOLE_PREFIX} on the S3 port. The console is a static single-page app: it holds no
 * server state and signs every S3 and admin call itself with SigV4, so this module only sends
 * files, with headers that keep the browser strict:
 *
 * - a Content-Security-Policy that allows scripts, styles and connections to this origin only
 *   (no inline script or style, no framing, no plugins);
 * - `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`, `X-Frame-Options: DENY`;
 * - hashed assets (`assets/*-<hash>.js`) cached for a year, `index.html` never cached, so a new
 *   build is picked up at the next load.
 *
 * The files are read once at start (a build is a few MiB) so a request never touches the disk.
 */
import { readdir, readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, extname, join, relative, sep } from 'node:path'
import type { Request, Response } from '../http/server.ts'

/** Where the console is mounted ('_' cannot start a bucket name, so no bucket is hidden). */
export const CONSOLE_PREFIX = '/_tessera/console'

/** The Content-Security-Policy of every console answer. */
export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "object-src 'none'",
].join('; ')

/** Headers sent with every console answer, files and errors alike. */
export const CONSOLE_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy': CONSOLE_CSP,
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cross-Origin-Opener-Policy': 'same-origin',
}

/** Cache lifetime of content-hashed assets, in seconds (their name changes with their bytes). */
export const ASSET_MAX_AGE_SECONDS = 365 * 24 * 3600

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
  '.map': 'application/json',
}

interface Asset {
  body: Buffer
  type: string
  cache: string
}

/**
 * The directory of the console build shipped by the @tessera/console workspace package
 * (`packages/console/dist`), found through Node's resolution from this package.
 */
export function defaultConsoleDir(): string {
  const require = createRequire(import.meta.url)
  return join(dirname(require.resolve('@tessera/console/package.json')), 'dist')
}

/** Whether a raw request path is the console's. */
export function isConsolePath(rawPath: string): boolean {
  return rawPath === CONSOLE_PREFIX || rawPath.startsWith(`${CONSOLE_PREFIX}/`)
}

/** The console's files, loaded in memory; {@link ConsoleAssets.serve} answers requests. */
export class ConsoleAssets {
  #files: Map<string, Asset>

  private constructor(files: Map<string, Asset>) {
    this.#files = files
  }

  /** Loads every file under `dir`; fails when the build is missing (run `pnpm build`). */
  static async load(dir: string): Promise<ConsoleAssets> {
    const files = new Map<string, Asset>()
    let names: string[]
    try {
      names = (await readdir(dir, { recursive: true, withFileTypes: true }))
        .filter((d) => d.isFile())
        .map((d) => join(d.parentPath, d.name))
    } catch (err) {
      throw new Error(
        `the console build is missing at ${dir} (${(err as Error).message}); run pnpm build, or set console: false`,
      )
    }
    for (const file of names) {
      const rel = relative(dir, file).split(sep).join('/')
      const hashed = rel.startsWith('assets/')
      files.set(rel, {
        body: await readFile(file),
        type: TYPES[extname(file)] ?? 'application/octet-stream',
        cache: hashed ? `public, max-age=${ASSET_MAX_AGE_SECONDS}, immutable` : 'no-cache',
      })
    }
    if (!files.has('index.html')) {
      throw new Error(`the console build at ${dir} has no index.html; run \`pnpm build\``)
    }
    return new ConsoleAssets(files)
  }

  /** Answers a GET or HEAD under CONSOLE_PREFIX; anything else is 405. Never throws. */
  async serve(req: Request, res: Response): Promise<void> {
    req.body.discard()
    for (const [k, v] of Object.entries(CONSOLE_HEADERS)) res.header(k, v)
    if (req.rawPath === CONSOLE_PREFIX) {
      res.status(301).header('Location', `${CONSOLE_PREFIX}/`).end()
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.status(405).header('Allow', 'GET, HEAD').header('Content-Type', 'text/plain')
      res.end(`${req.method} is not allowed on the console; it only serves files\n`)
      return
    }
    const rel = req.rawPath.slice(CONSOLE_PREFIX.length + 1)
    // The app routes in the URL fragment, so every path is a file or a 404; '' is the app.
    const asset = this.#files.get(rel === '' ? 'index.html' : rel)
    if (asset === undefined) {
      res.status(404).header('Content-Type', 'text/plain').header('Cache-Control', 'no-cache')
      res.end(`No console file ${req.rawPath}\n`)
      return
    }
    res.status(200).header('Content-Type', asset.type).header('Cache-Control', asset.cache)
    if (req.method === 'HEAD') res.endWithoutBody(asset.body.byteLength)
    else res.end(asset.body)
  }
}

/** Why the console is not served: turned off by config, or its build is missing. */
export type ConsoleAbsence = 'off' | 'missing'

/** The answer under CONSOLE_PREFIX when the console is not served. */
export async function serveNoConsole(
  req: Request,
  res: Response,
  why: ConsoleAbsence,
): Promise<void> {
  req.body.discard()
  for (const [k, v] of Object.entries(CONSOLE_HEADERS)) res.header(k, v)
  res.header('Content-Type', 'text/plain').header('Cache-Control', 'no-cache')
  if (why === 'off') {
    res.status(404).end('The web console is turned off on this gateway (console: false)\n')
  } else {
    res
      .status(503)
      .end('The web console is not built on this gateway; run `pnpm build` and restart it\n')
  }
}
