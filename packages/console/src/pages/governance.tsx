/**
 * Identity governance: managed policies, service accounts, account settings and guardrails,
 * and the audit log of identity changes. Each section shows only when /whoami says the caller
 * may use it; the gateway decides every call again.
 */
import { type FormEvent, useCallback, useEffect, useState } from 'react'
import { confirmThen, errorText } from '../clients.ts'
import { formatDate } from '../format.ts'
import { useSession } from '../session-context.ts'

interface Policy {
  name: string
  arn: string
  builtin: boolean
  description?: string
  attachmentCount: number
  document: unknown
}

/** Problems of an identity policy the gateway would refuse, found before sending it. */
export function checkIdentityPolicy(text: string, maxBytes: number): string[] {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (err) {
    return [`Not valid JSON: ${(err as Error).message}`]
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    return ['A policy is a JSON object']
  const problems: string[] = []
  const size = new TextEncoder().encode(JSON.stringify(doc)).byteLength
  if (size > maxBytes)
    problems.push(`The policy is ${size} bytes minified; the limit is ${maxBytes}`)
  const d = doc as { Version?: unknown; Statement?: unknown }
  if (d.Version !== '2012-10-17') problems.push('Version must be "2012-10-17"')
  const statements = Array.isArray(d.Statement) ? d.Statement : d.Statement ? [d.Statement] : []
  if (statements.length === 0) problems.push('Statement must hold at least one statement')
  statements.forEach((s: unknown, i: number) => {
    const st = s as Record<string, unknown>
    if (st.Effect !== 'Allow' && st.Effect !== 'Deny')
      problems.push(`Statement ${i + 1}: Effect must be "Allow" or "Deny"`)
    if (st.Principal !== undefined)
      problems.push(`Statement ${i + 1}: an identity policy has no Principal`)
  })
  return problems
}

export function ManagedPolicies() {
  const { admin, me } = useSession()
  const maxBytes = me.limits?.policyMaxBytes ?? 2048
  const [policies, setPolicies] = useState<Policy[] | undefined>()
  const [open, setOpen] = useState<string | undefined>()
  const [draft, setDraft] = useState('')
  const [error, setError] = useState<string | undefined>()
  const load = useCallback(async () => {
    try {
      setPolicies((await admin.call<{ policies: Policy[] }>('GET', ['policies'])).policies)
    } catch (err) {
      setError(errorText(err))
    }
  }, [admin])
  useEffect(() => {
    void load()
  }, [load])
  const problems = draft.trim() === '' ? [] : checkIdentityPolicy(draft, maxBytes)
  async function create(e: FormEvent<HTMLFormElement>) {
    e.preventDefault()
    const form = e.currentTarget
    const f = new FormData(form)
    const description = String(f.get('description') ?? '').trim()
    try {
      await admin.call('POST', ['policies'], {
        body: {
          name: String(f.get('name') ?? '').trim(),
          document: JSON.parse(draft),
          ...(description ? { description } : {}),
        },
      })
      form.reset()
      setDraft('')
      setError(undefined)
      await load()
    } catch (err) {
      setError(errorText(err))
    }
  }
  async function remove(p: Policy) {
    await confirmThen(`Delete managed policy ${p.name}?`, setError, async () => {
      await admin.call('DELETE', ['policies', p.name])
      await load()
    })
  }
  return (
    <div className="card" data-testid="managed-policies">
      <h3>Managed policies</h3>
      {error && <p className="error">{error}</p>}
      {policies && (
        <table>
          <thead>
            <tr>
              <th>Policy</th>
              <th>Description</th>
              <th>Attached to</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {policies.map((p) => (
              <tr key={p.arn} data-testid={`policy-${p.name}`}>
                <td>
                  {p.name}
                  {p.builtin && <span className="badge">built-in</span>}
                </td>
                <td>{p.description ?? ''}</td>
                <td>{p.attachmentCount} user(s)</td>
                <td className="actions">
                  <button
                    type="button"
                    onClick={() => setOpen(open === p.name ? undefined : p.name)}
                  >
                    {open === p.name ? 'Hide' : 'Show'}
                  </button>
                  {me.capabilities.managePolicies && !p.builtin && (
                    <button type="button" className="danger" onClick={() => void remove(p)}>
                      Delete
                    </button>
                  )}
                  {open === p.name && <pre>{JSON.stringify(p.document, null, 2)}</pre>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {me.capabilities.managePolicies && (
        <form onSubmit={(e) => void create(e)} className="stack" data-testid="create-policy">
          <div className="row">
            <input name="name" required placeholder="policy name" aria-label="Policy name" />
            <input name="description" placeholder="description" aria-label="Policy description" />
          </div>
          <textarea
            className="code"
            rows={8}
            value={draft}
            onChange={(e) => setDraft(e.target.value)}
            placeholder='{"Version": "2012-10-17", "Statement": [...]}'
            aria-label="Policy document"
            spellCheck={false}
          />
          {problems.length > 0 && (
            <ul className="error">
              {problems.map((p) => (
                <li key={p}>{p}</li>
              ))}
            </ul>
          )}
          <div className="row">
            <button type="submit" disabled={draft.trim() === '' || problems.length > 0}>
              Create policy
            </button>
            <span className="hint">At most {maxBytes} bytes of minified JSON.</span>
          </div>
        </form>
      )}
    </div>
  )
}

/** Attach and detach managed policies on one user. */
export function AttachedPolicies({ user, attached }: { user: string; attached: string[] }) {
  const { admin, me } = useSession()
  const [names, setNames] = useState<string[]>([])
  const [error, setError] = useState<string | undefined>()
  const [list, setList] = useState(attached)
  useEffect(() => {
    if (!me.capabilities.viewPolicies) return
    admin.call<{ policies: Policy[] }>('GET', ['policies']).then(
      (r) => setNames(r.policies.map((p) => p.name)),
      (err: unknown) => setError(errorText(err)),
    )
  }, [admin, me.capabilities.viewPolicies])
  async function refresh() {
    const r = await admin.call<{ attached: { name: string }[] }>('GET', ['users', user, 'attached'])
    setList(r.attached.map((a) => a.name))
  }
  async function attach(e: FormEvent<HTMLFormElement>) {
    e.preventDefault()
    const policy = String(new FormData(e.currentTarget).get('policy') ?? '')
    try {
      await admin.call('POST', ['users', user, 'attached'], { body: { policy } })
      await refresh()
    } catch (err) {
      setError(errorText(err))
    }
  }
  async function detach(policy: string) {
    try {
      await admin.call('DELETE', ['users', user, 'attached', policy])
      await refresh()
    } catch (err) {
      setError(errorText(err))
    }
  }
  return (
    <div className="row" data-testid={`attached-${user}`}>
      <strong>Managed policies:</strong>
      {list.length === 0 && <span className="hint">none</span>}
      {list.map((p) => (
        <span key={p} className="badge">
          {p}
          {me.capabilities.attachPolicies && (
            <button
              type="button"
              className="link"
              aria-label={`Detach ${p}`}
              onClick={() => void detach(p)}
            >
              ×
            </button>
          )}
        </span>
      ))}
      {me.capabilities.attachPolicies && names.length > 0 && (
        <form className="row" onSubmit={(e) => void attach(e)}>
          <select name="policy" aria-label="Policy to attach">
            {names
              .filter((n) => !list.includes(n))
              .map((n) => (
                <option key={n} value={n}>
                  {n}
                </option>
              ))}
          </select>
          <button type="submit">Attach</button>
        </form>
      )}
      {error && <span className="error">{error}</span>}
    </div>
  )
}

interface ServiceAccount {
  id: string
  user: string
  project: string
  status: string
  state: string
  created: string
  lastUsed?: string
  name?: string
  description?: string
  hasPolicy: boolean
}

export function ServiceAccounts(props: {
  onSecret(s: { accessKeyId: string; secretAccessKey: string; user: string; project: string }): void
}) {
  const { admin } = useSession()
  const [list, setList] = useState<ServiceAccount[] | undefined>()
  const [error, setError] = useState<string | undefined>()
  const load = useCallback(async () => {
    try {
      const r = await admin.call<{ serviceAccounts: ServiceAccount[] }>('GET', ['service-accounts'])
      setList(r.serviceAccounts)
    } catch (err) {
      setError(errorText(err))
    }
  }, [admin])
  useEffect(() => {
    void load()
  }, [load])
  async function create(e: FormEvent<HTMLFormElement>) {
    e.preventDefault()
    const form = e.currentTarget
    const f = new FormData(form)
    const name = String(f.get('name') ?? '').trim()
    const policy = String(f.get('policy') ?? '').trim()
    try {
      const r = await admin.call<{
        accessKeyId: string
        secretAccessKey: string
        serviceAccount: ServiceAccount
      }>('POST', ['service-accounts'], {
        body: { ...(name ? { name } : {}), ...(policy ? { policy: JSON.parse(policy) } : {}) },
      })
      props.onSecret({
        accessKeyId: r.accessKeyId,
        secretAccessKey: r.secretAccessKey,
        user: r.serviceAccount.user,
        project: r.serviceAccount.project,
      })
      form.reset()
      setError(undefined)
      await load()
    } catch (err) {
      setError(errorText(err))
    }
  }
  async function remove(sa: ServiceAccount) {
    await confirmThen(`Delete service account ${sa.id}?`, setError, async () => {
      await admin.call('DELETE', ['service-accounts', sa.id])
      await load()
    })
  }
  return (
    <div className="card" data-testid="service-accounts">
      <h3>Service accounts</h3>
      <p className="hint">
        Child credentials of a user for programs: they never expire, act with the user&apos;s
        permissions, optionally narrowed by their own policy.
      </p>
      {error && <p className="error">{error}</p>}
      {list && list.length > 0 && (
        <table>
          <thead>
            <tr>
              <th>ID</th>
              <th>Name</th>
              <th>User</th>
              <th>Project</th>
              <th>Status</th>
              <th>Narrowed</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {list.map((sa) => (
              <tr key={sa.id}>
                <td>
                  <code>{sa.id}</code>
                </td>
                <td>{sa.name ?? ''}</td>
                <td>{sa.user}</td>
                <td>{sa.project}</td>
                <td>{sa.state === 'ok' ? sa.status : sa.state}</td>
                <td>{sa.hasPolicy ? 'yes' : 'no'}</td>
                <td>
                  <button type="button" className="danger" onClick={() => void remove(sa)}>
                    Delete
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <form className="row" onSubmit={(e) => void create(e)}>
        <input name="name" placeholder="name (e.g. ci)" aria-label="Service account name" />
        <input
          name="policy"
          placeholder="optional narrowing policy (JSON)"
          aria-label="Narrowing policy"
          spellCheck={false}
        />
        <button type="submit">Create service account</button>
      </form>
    </div>
  )
}

interface Account {
  id: string
  maxKeyAgeDays?: number
  policyMaxBytes: number
  guardrails: { deniedActions: string[]; offeredActions?: string[] }
}

export function AccountSettings() {
  const { admin, me } = useSession()
  const [account, setAccount] = useState<Account | undefined>()
  const [error, setError] = useState<string | undefined>()
  const [notice, setNotice] = useState<string | undefined>()
  const load = useCallback(async () => {
    try {
      setAccount(await admin.call<Account>('GET', ['account']))
    } catch (err) {
      setError(errorText(err))
    }
  }, [admin])
  useEffect(() => {
    void load()
  }, [load])
  async function save(e: FormEvent<HTMLFormElement>) {
    e.preventDefault()
    const f = new FormData(e.currentTarget)
    const denied = String(f.get('denied') ?? '')
      .split(/[\s,]+/)
      .filter((a) => a !== '')
    const age = String(f.get('maxKeyAgeDays') ?? '').trim()
    try {
      setAccount(
        await admin.call<Account>('PATCH', ['account'], {
          body: {
            guardrails: { deniedActions: denied },
            ...(age !== '' ? { maxKeyAgeDays: Number(age) } : {}),
          },
        }),
      )
      setNotice('Saved')
      setError(undefined)
    } catch (err) {
      setError(errorText(err))
    }
  }
  const canEdit = me.capabilities.manageAccount
  if (account === undefined)
    return (
      <div className="card" data-testid="guardrails">
        <h3>Account settings and guardrails</h3>
        {error ? <p className="error">{error}</p> : <p className="hint">Loading…</p>}
      </div>
    )
  return (
    <div className="card" data-testid="guardrails">
      <h3>Account settings and guardrails</h3>
      <form onSubmit={(e) => void save(e)} className="stack">
        <label>
          Access keys must be rotated after (days)
          <input
            name="maxKeyAgeDays"
            type="number"
            min={1}
            defaultValue={account.maxKeyAgeDays ?? ''}
            readOnly={!canEdit}
          />
        </label>
        <p>
          Policy size limit: <strong>{account.policyMaxBytes}</strong> bytes (minified JSON)
        </p>
        <label>
          Actions denied to everyone but the owner (guardrails)
          <textarea
            name="denied"
            rows={3}
            defaultValue={account.guardrails.deniedActions.join('\n')}
            readOnly={!canEdit}
            spellCheck={false}
          />
        </label>
        <p>
          Actions offered by this deployment:{' '}
          {account.guardrails.offeredActions
            ? account.guardrails.offeredActions.join(', ')
            : 'all S3 actions'}
        </p>
        {canEdit && (
          <div className="row">
            <button type="submit" data-testid="account-save">
              Save settings
            </button>
          </div>
        )}
      </form>
      {notice && <p className="notice">{notice}</p>}
      {error && <p className="error">{error}</p>}
    </div>
  )
}

interface AuditEntry {
  at: string
  who: string
  accessKeyId?: string
  action: string
  target: string
  detail?: unknown
  requestId?: string
  sourceIp?: string
}

/** The most recent identity changes (the audit log keeps them oldest first). */
export function AuditLog() {
  const { admin } = useSession()
  const [entries, setEntries] = useState<AuditEntry[] | undefined>()
  const [error, setError] = useState<string | undefined>()
  useEffect(() => {
    admin.call<{ entries: AuditEntry[] }>('GET', ['audit'], { query: { limit: '200' } }).then(
      (r) => setEntries([...r.entries].reverse()),
      (err: unknown) => setError(errorText(err)),
    )
  }, [admin])
  return (
    <div className="card" data-testid="audit">
      <h3>Audit log of identity changes</h3>
      {error && <p className="error">{error}</p>}
      {entries && (
        <table>
          <thead>
            <tr>
              <th>When</th>
              <th>Who</th>
              <th>Action</th>
              <th>Target</th>
              <th>From</th>
              <th>Request</th>
            </tr>
          </thead>
          <tbody>
            {entries.map((e) => (
              <tr key={`${e.at}-${e.requestId ?? ''}-${e.action}-${e.target}`}>
                <td>{formatDate(e.at)}</td>
                <td>{e.who}</td>
                <td>{e.action}</td>
                <td>{e.target}</td>
                <td>{e.sourceIp ?? ''}</td>
                <td>
                  <code>{e.requestId ?? ''}</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  )
}
