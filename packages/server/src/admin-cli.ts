/**
 * `tessera admin …`: the CLI over the gateway's admin API (docs/admin-api.md). Every command is
 * one signed JSON call (two for `guardrails set`), printed as an aligned table or, with
 * `--json`, as the API's answer.
 *
 * Tables come from the small aligner at the end of this file rather than a table library: the
 * output is plain columns with no borders or wrapping, which takes a dozen lines, and a
 * dependency (cli-table3 and its string-width tree) would buy only borders we do not want.
 */
import { createHash } from 'node:crypto'
import { type FileHandle, open, readFile, unlink } from 'node:fs/promises'
import { Sha256 } from '@aws-crypto/sha256-js'
import { HttpRequest } from '@smithy/protocol-http'
import { SignatureV4 } from '@smithy/signature-v4'
import { ADMIN_PREFIX, readCredentials } from '@tessera/gateway'
import { Command } from 'commander'
import { clusterCommand, healCommand } from './ops-cli.ts'

/** Keys this close to their rotation date (or refused already) are flagged in listings. */
const ROTATION_WARNING_DAYS = 14
const DAY_MS = 86_400_000

/** Credentials that sign admin calls. */
export interface AdminCredentials {
  accessKeyId: string
  secretAccessKey: string
  sessionToken?: string
}

/** A failed command: printed as `tessera admin: <code>: <message>`. */
export class AdminCliError extends Error {
  static override name = 'AdminCliError'
  readonly code: string
  readonly status?: number
  constructor(code: string, message: string, status?: number) {
    super(message)
    this.name = 'AdminCliError'
    this.code = code
    if (status !== undefined) this.status = status
  }
}

export interface AdminClientInit {
  /** The gateway's S3 endpoint, e.g. http://127.0.0.1:9000 (a path prefix is kept). */
  endpoint: string
  region: string
  credentials: AdminCredentials
}

/** One signed JSON call to the admin API per `call`; throws AdminCliError on a non-2xx answer. */
export class AdminClient {
  #url: URL
  #signer: SignatureV4

  constructor(init: AdminClientInit) {
    let url: URL
    try {
      url = new URL(init.endpoint)
    } catch {
      throw new AdminCliError('UsageError', `--endpoint ${init.endpoint} is not a URL`)
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new AdminCliError('UsageError', `--endpoint ${init.endpoint}: want http:// or https://`)
    }
    this.#url = url
    this.#signer = new SignatureV4({
      service: 's3',
      region: init.region,
      credentials: init.credentials,
      sha256: Sha256,
      // The path is sent exactly as encoded below, and that is what S3 signs.
      uriEscapePath: false,
      applyChecksum: false,
    })
  }

  /**
   * Calls `method` on the admin path made of `segments` (each percent-encoded here). Answers
   * the parsed JSON body, or undefined for 204.
   */
  async call(
    method: string,
    segments: string[],
    opts: { query?: Record<string, string | undefined>; body?: unknown } = {},
  ): Promise<unknown> {
    const base = this.#url.pathname.replace(/\/+$/, '')
    const path = `${base}${ADMIN_PREFIX}/${segments.map(uriEncode).join('/')}`
    const query: Record<string, string> = {}
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) query[k] = v
    const payload =
      opts.body === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(opts.body))
    const headers: Record<string, string> = {
      host: this.#url.host,
      'x-amz-content-sha256': createHash('sha256').update(payload).digest('hex'),
    }
    if (opts.body !== undefined) headers['content-type'] = 'application/json'
    const request = new HttpRequest({
      method,
      protocol: this.#url.protocol,
      hostname: this.#url.hostname,
      ...(this.#url.port !== '' ? { port: Number(this.#url.port) } : {}),
      path,
      query,
      headers,
      body: payload,
    })
    const signed = await this.#signer.sign(request)
    const qs = Object.entries(query)
      .map(([k, v]) => `${uriEncode(k)}=${uriEncode(v)}`)
      .join('&')
    const target = `${this.#url.origin}${path}${qs ? `?${qs}` : ''}`
    let res: Response
    try {
      res = await fetch(target, {
        method,
        headers: signed.headers,
        ...(opts.body !== undefined ? { body: payload } : {}),
      })
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause
      throw new AdminCliError(
        'ConnectionFailed',
        `cannot reach ${this.#url.origin}: ${cause?.code ?? cause?.message ?? (err as Error).message}`,
      )
    }
    const text = await res.text()
    if (res.status >= 200 && res.status < 300) {
      if (res.status === 204 || text === '') return undefined
      try {
        return JSON.parse(text) as unknown
      } catch {
        throw new AdminCliError(
          'BadResponse',
          `${this.#url.origin} answered ${res.status} with something other than JSON; ` +
            'is it a Tessera gateway with the admin API?',
          res.status,
        )
      }
    }
    throw errorOf(res.status, text)
  }
}

/** The error of a non-2xx answer: the admin API's JSON, or the S3 XML of a gateway without it. */
function errorOf(status: number, text: string): AdminCliError {
  try {
    const e = (JSON.parse(text) as { error?: { code?: unknown; message?: unknown } }).error
    if (typeof e?.code === 'string') {
      return new AdminCliError(e.code, typeof e.message === 'string' ? e.message : '', status)
    }
  } catch {
    // Not JSON: perhaps S3 XML.
  }
  const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1]
  if (code !== undefined) {
    const message = /<Message>([^<]*)<\/Message>/.exec(text)?.[1] ?? ''
    return new AdminCliError(code, `${message} (HTTP ${status})`, status)
  }
  return new AdminCliError('HttpError', `HTTP ${status}: ${text.slice(0, 200)}`, status)
}

/** SigV4's URI encoding: everything but A-Z a-z 0-9 - _ . ~ is percent-encoded. */
function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  )
}

// The command tree ------------------------------------------------------------------------------

interface GlobalOptions {
  endpoint: string
  region: string
  credentials?: string
  json?: boolean
}

interface Ctx {
  api: AdminClient
  json: boolean
  out(text: string): void
  /** Notes for people: stdout normally, stderr under --json so stdout stays pure JSON. */
  note(text: string): void
  print(value: unknown, human: () => string): void
  /** For calls that answer nothing: a line for people, `{}` under --json. */
  done(text: string): void
}

/**
 * The `admin` command group. `env` is the process environment (main.ts is the only module that
 * reads process.env): TESSERA_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 * AWS_SESSION_TOKEN.
 */
export function adminCommand(env: NodeJS.ProcessEnv): Command {
  const admin = new Command('admin')
    .description(
      'manage the cluster over the admin API: users, keys, projects, roles, policies, ' +
        'service accounts, guardrails, audit log, cluster status, healing',
    )
    .option(
      '--endpoint <url>',
      'gateway S3 endpoint (env TESSERA_ENDPOINT)',
      env.TESSERA_ENDPOINT || 'http://127.0.0.1:9000',
    )
    .option('--region <name>', 'region to sign requests for', 'us-east-1')
    .option(
      '--credentials <file>',
      'credentials.yaml with accessKeyId and secretAccessKey ' +
        '(default: env AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN)',
    )
    .option('--json', 'print the API answers as JSON')

  /** An action with the API client and output set up, and errors printed the admin way. */
  const run =
    <A extends unknown[]>(fn: (x: Ctx, ...args: A) => Promise<void>) =>
    async (...args: unknown[]): Promise<void> => {
      const cmd = args[args.length - 1] as Command
      try {
        const g = cmd.optsWithGlobals<GlobalOptions>()
        const x = context(g, await credentialsOf(g, env))
        // Commander passes the positional arguments, then the command's options, then itself.
        await fn(x, ...(args.slice(0, -1) as A))
      } catch (err) {
        const e =
          err instanceof AdminCliError ? err : new AdminCliError('Failed', (err as Error).message)
        process.stderr.write(`tessera admin: ${e.code}: ${e.message}\n`)
        process.exitCode = 1
      }
    }

  admin
    .command('whoami')
    .description('show who the credentials belong to')
    .action(
      run(async (x) => {
        const me = (await x.api.call('GET', ['whoami'])) as Json
        x.print(me, () =>
          fieldsText([
            ['Name', me.name],
            ['Kind', me.kind],
            ['Access key', me.accessKeyId],
            ['Project', me.project ?? (me.root ? '(all: root)' : '')],
            ['ARN', me.arn],
            ['User id', me.userId],
            ['Canonical id', me.canonicalId],
            ['Expires', me.expires],
            ['Session', me.sessionName],
          ]),
        )
      }),
    )

  // Account and guardrails ----------------------------------------------------------------------
  const account = admin.command('account').description('account settings')
  account
    .command('show')
    .description('show the account settings')
    .action(
      run(async (x) => {
        const a = (await x.api.call('GET', ['account'])) as Json
        x.print(a, () => accountText(a))
      }),
    )
  account
    .command('set')
    .description('change the key rotation age or the policy size limit')
    .option('--max-key-age-days <n>', 'access keys older than this are refused (rotation)')
    .option('--policy-max-bytes <n>', 'largest policy document accepted, in bytes')
    .action(
      run(async (x, o: { maxKeyAgeDays?: string; policyMaxBytes?: string }) => {
        const body: Json = {}
        if (o.maxKeyAgeDays !== undefined)
          body.maxKeyAgeDays = wholeNumber('--max-key-age-days', o.maxKeyAgeDays)
        if (o.policyMaxBytes !== undefined)
          body.policyMaxBytes = wholeNumber('--policy-max-bytes', o.policyMaxBytes)
        if (Object.keys(body).length === 0) {
          throw usage('give --max-key-age-days, --policy-max-bytes or both')
        }
        const a = (await x.api.call('PATCH', ['account'], { body })) as Json
        x.print(a, () => `Account updated.\n${accountText(a)}`)
      }),
    )

  const guardrails = admin
    .command('guardrails')
    .description('actions denied to all but the owner, and the actions offered at all')
  guardrails
    .command('show')
    .description('show the guardrails')
    .action(
      run(async (x) => {
        const a = (await x.api.call('GET', ['account'])) as Json
        x.print(a.guardrails, () => guardrailsText(a.guardrails as Json))
      }),
    )
  guardrails
    .command('set')
    .description('change the guardrails; what is not given stays as it is')
    .option('--deny <actions>', "comma-separated actions denied to all but the owner ('' for none)")
    .option(
      '--offer <actions>',
      'comma-separated actions the deployment offers (wildcards allowed)',
    )
    .option('--offer-all', 'offer every action (removes the --offer list)')
    .action(
      run(async (x, o: { deny?: string; offer?: string; offerAll?: boolean }) => {
        if (o.offer !== undefined && o.offerAll)
          throw usage('give --offer or --offer-all, not both')
        const g: Json = {}
        if (o.deny !== undefined) g.deniedActions = list(o.deny)
        if (o.offer !== undefined) {
          const offered = list(o.offer)
          if (offered.length === 0) throw usage("--offer '' would offer nothing; use --offer-all")
          g.offeredActions = offered
        }
        if (o.offerAll) g.offeredActions = null
        if (Object.keys(g).length === 0) throw usage('give --deny, --offer or --offer-all')
        const a = (await x.api.call('PATCH', ['account'], { body: { guardrails: g } })) as Json
        x.print(a.guardrails, () => `Guardrails updated.\n${guardrailsText(a.guardrails as Json)}`)
      }),
    )

  admin
    .command('audit')
    .description('list identity changes, oldest first')
    .option('--since <time>', 'only changes after this ISO 8601 time (or epoch ms)')
    .option('--limit <n>', 'at most this many entries')
    .action(
      run(async (x, o: { since?: string; limit?: string }) => {
        const query = {
          since: o.since,
          limit: o.limit === undefined ? undefined : String(wholeNumber('--limit', o.limit)),
        }
        const r = (await x.api.call('GET', ['audit'], { query })) as { entries: Json[] }
        x.print(r, () =>
          table(
            ['TIME', 'WHO', 'ACTION', 'TARGET', 'DETAIL'],
            r.entries.map((e) => [
              time(e.at),
              str(e.who),
              str(e.action),
              str(e.target),
              e.detail === undefined ? '' : JSON.stringify(e.detail),
            ]),
            'No changes recorded.',
          ),
        )
      }),
    )

  // Projects ---------------------------------------------------------------------------------
  const projects = admin.command('projects').description('projects: the groups buckets belong to')
  projects
    .command('list')
    .description('list projects')
    .action(
      run(async (x) => {
        const r = (await x.api.call('GET', ['projects'])) as { projects: Json[] }
        x.print(r, () =>
          table(
            ['NAME', 'BUCKETS', 'MEMBERS', 'CREATED', 'DESCRIPTION'],
            r.projects.map((p) => [
              str(p.name),
              str(p.buckets),
              str(p.members),
              time(p.created),
              str(p.description),
            ]),
            'No projects.',
          ),
        )
      }),
    )
  projects
    .command('create')
    .description('create a project')
    .argument('<name>')
    .option('--description <text>', 'what the project is for')
    .action(
      run(async (x, name: string, o: { description?: string }) => {
        const p = (await x.api.call('POST', ['projects'], {
          body: { name, ...(o.description !== undefined ? { description: o.description } : {}) },
        })) as Json
        x.print(p, () => `Created project ${p.name}.`)
      }),
    )
  projects
    .command('delete')
    .description('delete a project (refused while it has buckets)')
    .argument('<name>')
    .action(
      run(async (x, name: string) => {
        await x.api.call('DELETE', ['projects', name])
        x.done(`Deleted project ${name}.`)
      }),
    )

  // Users ------------------------------------------------------------------------------------
  const users = admin.command('users').description('users: people and programs')
  users
    .command('list')
    .description('list users')
    .action(
      run(async (x) => {
        const r = (await x.api.call('GET', ['users'])) as { users: Json[] }
        x.print(r, () =>
          table(
            ['NAME', 'KIND', 'ROLES', 'POLICIES', 'SERVICE ACCTS', 'DISABLED', 'CREATED'],
            r.users.map((u) => [
              str(u.name),
              str(u.kind),
              rolesText(u.roles),
              [...strs(u.attached), ...strs(u.policies).map((p) => `${p} (inline)`)].join(', '),
              str(u.serviceAccounts),
              u.disabled ? 'yes' : 'no',
              time(u.created),
            ]),
            'No users.',
          ),
        )
      }),
    )
  users
    .command('create')
    .description('create a user; then bind roles and create keys')
    .argument('<name>')
    .option('--service', 'a service user (a program), not a person')
    .option('--email <address>', 'e-mail address (S3 ACL grants by e-mail find the user by it)')
    .action(
      run(async (x, name: string, o: { service?: boolean; email?: string }) => {
        const u = (await x.api.call('POST', ['users'], {
          body: {
            name,
            kind: o.service ? 'service' : 'person',
            ...(o.email !== undefined ? { email: o.email } : {}),
          },
        })) as Json
        x.print(u, () =>
          [
            `Created ${u.kind} user ${u.name} (${u.arn}).`,
            `Next: tessera admin roles bind ${u.name} <role> [--project <p>]`,
            `      tessera admin keys create --user ${u.name} --project <p>`,
          ].join('\n'),
        )
      }),
    )
  users
    .command('show')
    .description('show a user')
    .argument('<name>')
    .action(
      run(async (x, name: string) => {
        const u = (await x.api.call('GET', ['users', name])) as Json
        x.print(u, () => userText(u))
      }),
    )
  users
    .command('delete')
    .description('delete a user with its keys, service accounts and sessions')
    .argument('<name>')
    .action(
      run(async (x, name: string) => {
        await x.api.call('DELETE', ['users', name])
        x.done(`Deleted user ${name}.`)
      }),
    )
  for (const [verb, what] of [
    ['disable', "refuse the user's keys, service accounts and sessions"],
    ['enable', 'accept the user again'],
  ] as const) {
    users
      .command(verb)
      .description(what)
      .argument('<name>')
      .action(
        run(async (x, name: string) => {
          const u = (await x.api.call('POST', ['users', name, verb])) as Json
          x.print(u, () => `User ${u.name} is ${u.disabled ? 'disabled' : 'enabled'}.`)
        }),
      )
  }

  // Roles ------------------------------------------------------------------------------------
  const roles = admin
    .command('roles')
    .description("a user's role bindings")
    .addHelpText(
      'after',
      '\nAccount roles: owner, admin (all but user management), user-admin (users and keys),\n' +
        'reader (sees everything). Project roles, with --project: project-admin, observer,\n' +
        's3-admin, s3-user (nothing until a policy allows it).',
    )
  roles
    .command('list')
    .description("list a user's roles")
    .argument('<user>')
    .action(
      run(async (x, user: string) => {
        const r = (await x.api.call('GET', ['users', user, 'roles'])) as { roles: Json[] }
        x.print(r, () =>
          table(
            ['ROLE', 'PROJECT'],
            r.roles.map((b) => [str(b.role), str(b.project)]),
            `${user} has no roles.`,
          ),
        )
      }),
    )
  for (const [verb, method, what] of [
    ['bind', 'POST', 'give a user a role'],
    ['unbind', 'DELETE', 'take a role from a user'],
  ] as const) {
    roles
      .command(verb)
      .description(what)
      .argument('<user>')
      .argument('<role>')
      .option('--project <name>', 'the project, for project roles')
      .action(
        run(async (x, user: string, role: string, o: { project?: string }) => {
          const binding = { role, ...(o.project !== undefined ? { project: o.project } : {}) }
          const u = (await x.api.call(
            method,
            ['users', user, 'roles'],
            method === 'POST' ? { body: binding } : { query: binding },
          )) as Json
          x.print(u, () => `${u.name} now has: ${rolesText(u.roles) || 'no roles'}.`)
        }),
      )
  }

  // Access keys ------------------------------------------------------------------------------
  const keys = admin.command('keys').description('access keys (each bound to a user and a project)')
  keys
    .command('list')
    .description('list access keys (yours unless --user); ! marks keys due for rotation or refused')
    .option('--user <name>', "another user's keys")
    .action(
      run(async (x, o: { user?: string }) => {
        const r = (await x.api.call('GET', o.user ? ['users', o.user, 'keys'] : ['keys'])) as {
          keys: Json[]
        }
        x.print(r, () => keysTable(r.keys))
      }),
    )
  keys
    .command('create')
    .description('create an access key; its secret is shown only this once')
    .option('--user <name>', 'for another user (owner and user-admin only)')
    .option('--project <name>', 'the project the key reaches (default: your key’s project)')
    .option('--expires <time>', 'refuse the key after this ISO 8601 time')
    .option('--out <file>', 'also write an AWS credentials file (mode 0600) here')
    .action(
      run(async (x, o: { user?: string; project?: string; expires?: string; out?: string }) => {
        const body: Json = {}
        if (o.project !== undefined) body.project = o.project
        if (o.expires !== undefined) body.expires = o.expires
        const path = o.user ? ['users', o.user, 'keys'] : ['keys']
        const r = await withOutFile(o.out, () => x.api.call('POST', path, { body }))
        await showSecret(x, r, 'key', o.out)
      }),
    )
  for (const [verb, status] of [
    ['disable', 'Inactive'],
    ['enable', 'Active'],
  ] as const) {
    keys
      .command(verb)
      .description(`make an access key ${status.toLowerCase()}`)
      .argument('<id>')
      .action(
        run(async (x, id: string) => {
          const k = (await x.api.call('PATCH', ['keys', id], { body: { status } })) as Json
          x.print(k, () => `Access key ${k.id} is ${str(k.status).toLowerCase()} (${k.state}).`)
        }),
      )
  }
  keys
    .command('delete')
    .description('delete an access key')
    .argument('<id>')
    .action(
      run(async (x, id: string) => {
        await x.api.call('DELETE', ['keys', id])
        x.done(`Deleted access key ${id}.`)
      }),
    )

  // Managed policies ---------------------------------------------------------------------------
  const policies = admin.command('policies').description('managed policies, attached to users')
  policies
    .command('list')
    .description('list managed policies')
    .option('--scope <scope>', 'All, AWS (built in) or Local (custom)', 'All')
    .action(
      run(async (x, o: { scope: string }) => {
        const r = (await x.api.call('GET', ['policies'], { query: { scope: o.scope } })) as {
          policies: Json[]
        }
        x.print(r, () =>
          table(
            ['NAME', 'TYPE', 'ATTACHED', 'UPDATED', 'DESCRIPTION'],
            r.policies.map((p) => [
              str(p.name),
              p.builtin ? 'built-in' : 'custom',
              str(p.attachmentCount),
              time(p.updated),
              str(p.description),
            ]),
            'No policies.',
          ),
        )
      }),
    )
  policies
    .command('show')
    .description('show a managed policy and its document')
    .argument('<name>', 'name or ARN')
    .action(
      run(async (x, name: string) => {
        const p = (await x.api.call('GET', ['policies', name])) as Json
        x.print(p, () =>
          [
            fieldsText([
              ['Name', p.name],
              ['ARN', p.arn],
              ['Type', p.builtin ? 'built-in' : 'custom'],
              ['Description', p.description],
              ['Attached to', `${p.attachmentCount} user(s)`],
              ['Created', time(p.created)],
              ['Updated', time(p.updated)],
            ]),
            documentText(p.document),
          ].join('\n'),
        )
      }),
    )
  policies
    .command('create')
    .description('create a managed policy from a JSON file')
    .argument('<name>')
    .requiredOption('--file <path>', 'the policy document (IAM JSON)')
    .option('--description <text>', 'what the policy is for')
    .action(
      run(async (x, name: string, o: { file: string; description?: string }) => {
        const body = {
          name,
          document: await policyFile(o.file),
          ...(o.description !== undefined ? { description: o.description } : {}),
        }
        const p = (await x.api.call('POST', ['policies'], { body })) as Json
        x.print(p, () => `Created policy ${p.name} (${p.arn}).`)
      }),
    )
  policies
    .command('delete')
    .description('delete a managed policy')
    .argument('<name>', 'name or ARN')
    .action(
      run(async (x, name: string) => {
        await x.api.call('DELETE', ['policies', name])
        x.done(`Deleted policy ${name}.`)
      }),
    )
  policies
    .command('attach')
    .description('attach a managed policy to a user')
    .argument('<user>')
    .argument('<policy>', 'name or ARN')
    .action(
      run(async (x, user: string, policy: string) => {
        await x.api.call('POST', ['users', user, 'attached'], { body: { policy } })
        x.done(`Attached ${policy} to ${user}.`)
      }),
    )
  policies
    .command('detach')
    .description('detach a managed policy from a user')
    .argument('<user>')
    .argument('<policy>', 'name or ARN')
    .action(
      run(async (x, user: string, policy: string) => {
        await x.api.call('DELETE', ['users', user, 'attached', policy])
        x.done(`Detached ${policy} from ${user}.`)
      }),
    )
  policies
    .command('attached')
    .description('list the managed policies attached to a user')
    .argument('<user>')
    .action(
      run(async (x, user: string) => {
        const r = (await x.api.call('GET', ['users', user, 'attached'])) as { attached: Json[] }
        x.print(r, () =>
          table(
            ['NAME', 'ARN'],
            r.attached.map((a) => [str(a.name), str(a.arn)]),
            `No policies attached to ${user}.`,
          ),
        )
      }),
    )

  // Inline user policies -------------------------------------------------------------------------
  const inline = admin.command('user-policies').description("a user's inline policies")
  inline
    .command('list')
    .description("list a user's inline policies")
    .argument('<user>')
    .action(
      run(async (x, user: string) => {
        const r = (await x.api.call('GET', ['users', user, 'policies'])) as { policies: string[] }
        x.print(r, () =>
          table(
            ['NAME'],
            r.policies.map((p) => [p]),
            `${user} has no inline policies.`,
          ),
        )
      }),
    )
  inline
    .command('put')
    .description('create or replace an inline policy from a JSON file')
    .argument('<user>')
    .argument('<name>')
    .requiredOption('--file <path>', 'the policy document (IAM JSON)')
    .action(
      run(async (x, user: string, name: string, o: { file: string }) => {
        const body = { document: await policyFile(o.file) }
        await x.api.call('PUT', ['users', user, 'policies', name], { body })
        x.done(`Put inline policy ${name} on ${user}.`)
      }),
    )
  inline
    .command('show')
    .description('show an inline policy')
    .argument('<user>')
    .argument('<name>')
    .action(
      run(async (x, user: string, name: string) => {
        const r = (await x.api.call('GET', ['users', user, 'policies', name])) as Json
        x.print(r, () => documentText(r.document))
      }),
    )
  inline
    .command('delete')
    .description('delete an inline policy')
    .argument('<user>')
    .argument('<name>')
    .action(
      run(async (x, user: string, name: string) => {
        await x.api.call('DELETE', ['users', user, 'policies', name])
        x.done(`Deleted inline policy ${name} of ${user}.`)
      }),
    )

  // Service accounts ---------------------------------------------------------------------------
  const sa = admin
    .command('service-accounts')
    .description("service accounts: a user's child credentials, optionally narrowed by a policy")
  sa.command('list')
    .description('list service accounts (yours unless --user)')
    .option('--user <name>', "another user's service accounts")
    .action(
      run(async (x, o: { user?: string }) => {
        const r = (await x.api.call('GET', ['service-accounts'], { query: { user: o.user } })) as {
          serviceAccounts: Json[]
        }
        x.print(r, () =>
          table(
            ['ACCESS KEY ID', 'NAME', 'USER', 'PROJECT', 'STATUS', 'STATE', 'POLICY', 'CREATED'],
            r.serviceAccounts.map((k) => [
              str(k.id),
              str(k.name),
              str(k.user),
              str(k.project),
              str(k.status),
              str(k.state),
              k.hasPolicy ? 'yes' : 'no',
              time(k.created),
            ]),
            'No service accounts.',
          ),
        )
      }),
    )
  sa.command('create')
    .description('create a service account; its secret is shown only this once')
    .option('--user <name>', 'parent user (default: you)')
    .option('--project <name>', 'the project it reaches (default: your key’s project)')
    .option('--name <name>', 'a name to tell it apart')
    .option('--description <text>', 'what it is for')
    .option('--policy-file <path>', 'a policy (IAM JSON) that narrows what it may do')
    .option('--out <file>', 'also write an AWS credentials file (mode 0600) here')
    .action(
      run(
        async (
          x,
          o: {
            user?: string
            project?: string
            name?: string
            description?: string
            policyFile?: string
            out?: string
          },
        ) => {
          const body: Json = {}
          for (const k of ['user', 'project', 'name', 'description'] as const) {
            if (o[k] !== undefined) body[k] = o[k]
          }
          if (o.policyFile !== undefined) body.policy = await policyFile(o.policyFile)
          const r = await withOutFile(o.out, () =>
            x.api.call('POST', ['service-accounts'], { body }),
          )
          await showSecret(x, r, 'serviceAccount', o.out)
        },
      ),
    )
  sa.command('show')
    .description('show a service account and its policy')
    .argument('<id>', 'its access key id')
    .action(
      run(async (x, id: string) => {
        const k = (await x.api.call('GET', ['service-accounts', id])) as Json
        x.print(k, () =>
          [
            fieldsText([
              ['Access key id', k.id],
              ['Name', k.name],
              ['Description', k.description],
              ['User', k.user],
              ['Project', k.project],
              ['Status', k.status],
              ['State', k.state],
              ['Created', time(k.created)],
              ['Last used', time(k.lastUsed)],
            ]),
            k.policy === null || k.policy === undefined
              ? "Policy: none (the parent user's permissions)"
              : `Policy:\n${documentText(k.policy)}`,
          ].join('\n'),
        )
      }),
    )
  for (const [verb, status] of [
    ['disable', 'Inactive'],
    ['enable', 'Active'],
  ] as const) {
    sa.command(verb)
      .description(`make a service account ${status.toLowerCase()}`)
      .argument('<id>')
      .action(
        run(async (x, id: string) => {
          const k = (await x.api.call('PATCH', ['service-accounts', id], {
            body: { status },
          })) as Json
          x.print(k, () => `Service account ${k.id} is ${str(k.status).toLowerCase()}.`)
        }),
      )
  }
  sa.command('set-policy')
    .description("replace or remove a service account's narrowing policy")
    .argument('<id>')
    .option('--file <path>', 'the new policy (IAM JSON)')
    .option('--remove', "remove the policy: the parent user's permissions apply")
    .action(
      run(async (x, id: string, o: { file?: string; remove?: boolean }) => {
        if ((o.file === undefined) === !o.remove) throw usage('give --file or --remove')
        const policy = o.remove ? null : await policyFile(o.file!)
        const k = (await x.api.call('PATCH', ['service-accounts', id], {
          body: { policy },
        })) as Json
        x.print(
          k,
          () => `Service account ${k.id} ${o.remove ? 'has no policy now' : 'policy set'}.`,
        )
      }),
    )
  sa.command('delete')
    .description('delete a service account')
    .argument('<id>')
    .action(
      run(async (x, id: string) => {
        await x.api.call('DELETE', ['service-accounts', id])
        x.done(`Deleted service account ${id}.`)
      }),
    )

  // Cluster status and healing (ops-cli.ts) -----------------------------------------------------
  const kit = {
    run,
    table,
    error: (code: string, message: string) => new AdminCliError(code, message),
  }
  admin.addCommand(clusterCommand(kit))
  admin.addCommand(healCommand(kit))

  return admin
}

// Context and credentials ---------------------------------------------------------------------

function context(g: GlobalOptions, credentials: AdminCredentials): Ctx {
  const json = g.json === true
  const out = (text: string): void => {
    process.stdout.write(text.endsWith('\n') ? text : `${text}\n`)
  }
  return {
    api: new AdminClient({ endpoint: g.endpoint, region: g.region, credentials }),
    json,
    out,
    note: (text) => (json ? process.stderr.write(`${text}\n`) : out(text)),
    print: (value, human) => out(json ? JSON.stringify(value, null, 2) : human()),
    done: (text) => out(json ? '{}' : text),
  }
}

async function credentialsOf(g: GlobalOptions, env: NodeJS.ProcessEnv): Promise<AdminCredentials> {
  if (g.credentials !== undefined) {
    try {
      return await readCredentials(g.credentials)
    } catch (err) {
      throw new AdminCliError('NoCredentials', (err as Error).message)
    }
  }
  const accessKeyId = env.AWS_ACCESS_KEY_ID
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY
  if (!accessKeyId || !secretAccessKey) {
    throw new AdminCliError(
      'NoCredentials',
      'give --credentials <dir>/credentials.yaml, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY',
    )
  }
  return {
    accessKeyId,
    secretAccessKey,
    ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
  }
}

// Secrets --------------------------------------------------------------------------------------

/**
 * Runs `create` with `path` (when given) already created with mode 0600, so that a path that
 * cannot be written fails before a key exists, and the file is never readable by others.
 */
async function withOutFile(
  path: string | undefined,
  create: () => Promise<unknown>,
): Promise<{ answer: Json; file?: FileHandle }> {
  if (path === undefined) return { answer: (await create()) as Json }
  let file: FileHandle
  try {
    file = await open(path, 'wx', 0o600)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw usage(
      code === 'EEXIST'
        ? `--out ${path} exists; give a new path (the file is created, never overwritten)`
        : `--out ${path}: ${(err as Error).message}`,
    )
  }
  try {
    return { answer: (await create()) as Json, file }
  } catch (err) {
    await file.close()
    await unlink(path).catch(() => {})
    throw err
  }
}

/** Prints a new key's secret, the only time it is shown, and writes the `--out` file. */
async function showSecret(
  x: Ctx,
  r: { answer: Json; file?: FileHandle },
  view: 'key' | 'serviceAccount',
  outPath: string | undefined,
): Promise<void> {
  const a = r.answer
  const k = (a[view] ?? {}) as Json
  const what = view === 'key' ? 'access key' : 'service account'
  x.print(a, () =>
    [
      `Created ${what} ${a.accessKeyId} for user ${k.user}, project ${k.project}` +
        (k.expires ? `, expires ${time(k.expires)}.` : '.'),
      `  AWS_ACCESS_KEY_ID=${a.accessKeyId}`,
      `  AWS_SECRET_ACCESS_KEY=${a.secretAccessKey}`,
    ].join('\n'),
  )
  x.note('The secret access key is shown only this once and will not be shown again; store it now.')
  if (!r.file) return
  try {
    await r.file.writeFile(
      `[default]\naws_access_key_id=${a.accessKeyId}\naws_secret_access_key=${a.secretAccessKey}\n`,
    )
  } finally {
    await r.file.close()
  }
  x.note(`Wrote the credentials to ${outPath} (mode 0600).`)
}

// Input -----------------------------------------------------------------------------------------

type Json = Record<string, unknown>

function usage(message: string): AdminCliError {
  return new AdminCliError('UsageError', message)
}

function wholeNumber(flag: string, v: string): number {
  const n = /^\d+$/.test(v) ? Number(v) : Number.NaN
  if (!Number.isSafeInteger(n) || n < 1) throw usage(`${flag} ${v}: want a whole number ≥ 1`)
  return n
}

function list(v: string): string[] {
  return v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
}

/** A policy file as a JSON object, checked here so a typo is reported with the file name. */
async function policyFile(path: string): Promise<Json> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw usage(`cannot read ${path}: ${(err as Error).message}`)
  }
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (err) {
    throw usage(`${path} is not valid JSON: ${(err as Error).message}`)
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw usage(`${path} must hold a policy document, a JSON object with Version and Statement`)
  }
  return doc as Json
}

// Output ----------------------------------------------------------------------------------------

function str(v: unknown): string {
  return v === undefined || v === null ? '' : String(v)
}

function strs(v: unknown): string[] {
  return Array.isArray(v) ? v.map(str) : []
}

/** An ISO time from the API, to the second. */
function time(v: unknown): string {
  return typeof v === 'string' ? v.replace(/\.\d+Z$/, 'Z') : ''
}

function rolesText(v: unknown): string {
  return (Array.isArray(v) ? (v as Json[]) : [])
    .map((b) => (b.project ? `${b.role}@${b.project}` : str(b.role)))
    .join(', ')
}

function documentText(doc: unknown): string {
  return typeof doc === 'string' ? doc : JSON.stringify(doc, null, 2)
}

/** `Label:  value` lines, labels aligned; empty values left out. */
function fieldsText(rows: [string, unknown][]): string {
  const shown = rows.filter(([, v]) => v !== undefined && v !== null && v !== '')
  const width = Math.max(...shown.map(([k]) => k.length)) + 1
  return shown.map(([k, v]) => `${`${k}:`.padEnd(width)}  ${str(v)}`).join('\n')
}

function accountText(a: Json): string {
  return [
    fieldsText([
      ['Account id', a.id],
      ['Max key age', `${a.maxKeyAgeDays} days`],
      ['Policy max size', `${a.policyMaxBytes} bytes`],
    ]),
    guardrailsText(a.guardrails as Json),
  ].join('\n')
}

function guardrailsText(g: Json | undefined): string {
  const denied = strs(g?.deniedActions)
  const offered = g?.offeredActions === undefined ? undefined : strs(g.offeredActions)
  return fieldsText([
    ['Denied actions', denied.length > 0 ? denied.join(', ') : 'none'],
    ['Offered actions', offered ? offered.join(', ') : 'all'],
  ])
}

function userText(u: Json): string {
  return fieldsText([
    ['Name', u.name],
    ['Kind', u.kind],
    ['ARN', u.arn],
    ['User id', u.id],
    ['Created', time(u.created)],
    ['Disabled', u.disabled ? 'yes' : 'no'],
    ['Roles', rolesText(u.roles) || 'none'],
    ['Attached policies', strs(u.attached).join(', ') || 'none'],
    ['Inline policies', strs(u.policies).join(', ') || 'none'],
    ['Service accounts', u.serviceAccounts],
  ])
}

/** Access keys with their age; `!` marks keys due for rotation within 14 days, or refused. */
function keysTable(keys: Json[]): string {
  const now = Date.now()
  let flagged = false
  const rows = keys.map((k) => {
    const due = typeof k.rotationDue === 'string' ? Date.parse(k.rotationDue) : Number.NaN
    const warn =
      k.state !== 'ok' || (!Number.isNaN(due) && due - now <= ROTATION_WARNING_DAYS * DAY_MS)
    flagged ||= warn
    return [
      str(k.id),
      str(k.user),
      str(k.project),
      str(k.status),
      str(k.state),
      `${str(k.ageDays)}d${warn ? ' !' : ''}`,
      time(k.rotationDue),
      time(k.expires),
      time(k.lastUsed),
    ]
  })
  const text = table(
    [
      'ACCESS KEY ID',
      'USER',
      'PROJECT',
      'STATUS',
      'STATE',
      'AGE',
      'ROTATION DUE',
      'EXPIRES',
      'LAST USED',
    ],
    rows,
    'No access keys.',
  )
  return flagged
    ? `${text}\n! = rotation due within ${ROTATION_WARNING_DAYS} days, or refused now (see STATE)`
    : text
}

/** Columns padded to their widest cell, two spaces apart; `empty` when there are no rows. */
export function table(head: string[], rows: string[][], empty: string): string {
  if (rows.length === 0) return empty
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd()
  return [line(head), ...rows.map(line)].join('\n')
}
