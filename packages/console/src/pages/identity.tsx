import { type FormEvent, useCallback, useEffect, useState } from 'react'
import { confirmThen, errorText } from '../clients.ts'
import { formatDate } from '../format.ts'
import { useSession } from '../session-context.ts'
import {
  AccountSettings,
  AttachedPolicies,
  AuditLog,
  ManagedPolicies,
  ServiceAccounts,
} from './governance.tsx'

interface User {
  name: string
  kind: string
  created: string
  roles: { role: string; project?: string }[]
  attached: string[]
  policies: string[]
  disabled: boolean
  serviceAccounts: number
}

interface Key {
  id: string
  kind: 'key' | 'service-account'
  user: string
  project: string
  status: string
  state: string
  created: string
  lastUsed?: string
  expires?: string
  ageDays: number
  rotationDue?: string
  name?: string
}

interface NewSecret {
  accessKeyId: string
  secretAccessKey: string
  user: string
  project: string
}

interface Project {
  name: string
  description?: string
  buckets: number
  members: number
  created: string
}

export const ACCOUNT_ROLES = ['owner', 'admin', 'user-admin', 'reader']
export const PROJECT_ROLES = ['project-admin', 'observer', 's3-admin', 's3-user']
/** A key this close to its rotation date (in days) is flagged. */
const ROTATION_WARNING_DAYS = 14

export function IdentityPage() {
  const { me } = useSession()
  const caps = me.capabilities
  const [secret, setSecret] = useState<NewSecret | undefined>()
  return (
    <section>
      <h2>Identity</h2>
      {secret && <SecretOnce secret={secret} onClose={() => setSecret(undefined)} />}
      {caps.issueOwnKeys && <KeyList title="My access keys" onSecret={setSecret} />}
      {caps.issueOwnKeys && <ServiceAccounts onSecret={setSecret} />}
      {caps.viewUsers && <Users onSecret={setSecret} />}
      {caps.viewProjects && <Projects />}
      {caps.viewPolicies && <ManagedPolicies />}
      {caps.viewAccount && <AccountSettings />}
      {caps.viewAudit && <AuditLog />}
    </section>
  )
}

/** A new key's secret: shown this once, with a copy button and a credentials file. */
function SecretOnce({ secret, onClose }: { secret: NewSecret; onClose(): void }) {
  const [copied, setCopied] = useState(false)
  const [file, setFile] = useState<string | undefined>()
  useEffect(() => {
    const text = `[tessera-${secret.user}]\naws_access_key_id = ${secret.accessKeyId}\naws_secret_access_key = ${secret.secretAccessKey}\n`
    const url = URL.createObjectURL(new Blob([text], { type: 'text/plain' }))
    setFile(url)
    return () => URL.revokeObjectURL(url)
  }, [secret])
  return (
    <div className="card secret" role="dialog" aria-label="New access key" data-testid="new-key">
      <h3>New access key for {secret.user}</h3>
      <p className="warn">
        This is the only time the secret is shown. Copy it or download the credentials file now.
      </p>
      <dl>
        <dt>Access key ID</dt>
        <dd>
          <code data-testid="new-key-id">{secret.accessKeyId}</code>
        </dd>
        <dt>Secret access key</dt>
        <dd>
          <code data-testid="new-key-secret">{secret.secretAccessKey}</code>
        </dd>
        <dt>Project</dt>
        <dd>{secret.project}</dd>
      </dl>
      <div className="row">
        <button
          type="button"
          onClick={() =>
            void navigator.clipboard?.writeText(secret.secretAccessKey).then(() => setCopied(true))
          }
        >
          {copied ? 'Copied' : 'Copy secret'}
        </button>
        {file && (
          <a className="button" href={file} download={`tessera-${secret.user}-credentials`}>
            Download credentials file
          </a>
        )}
        <button type="button" onClick={onClose} data-testid="new-key-done">
          I have saved it
        </button>
      </div>
    </div>
  )
}

function keyWarning(k: Key): string | undefined {
  if (k.state !== 'ok') return k.state
  if (k.rotationDue) {
    const days = (new Date(k.rotationDue).getTime() - Date.now()) / 86_400_000
    if (days < ROTATION_WARNING_DAYS) return `rotate within ${Math.max(0, Math.ceil(days))} days`
  }
  return undefined
}

/** A user's keys (or the caller's own when `user` is undefined), with create/disable/delete. */
function KeyList(props: {
  title: string
  user?: string
  canManage?: boolean
  onSecret(s: NewSecret): void
}) {
  const { admin } = useSession()
  const [keys, setKeys] = useState<Key[] | undefined>()
  const [error, setError] = useState<string | undefined>()
  const user = props.user
  const segments = user === undefined ? ['keys'] : ['users', user, 'keys']
  const canManage = props.canManage ?? true
  const projects = useProjectNames()
  const load = useCallback(async () => {
    try {
      const path = user === undefined ? ['keys'] : ['users', user, 'keys']
      setKeys((await admin.call<{ keys: Key[] }>('GET', path)).keys)
    } catch (err) {
      setError(errorText(err))
    }
  }, [admin, user])
  useEffect(() => {
    void load()
  }, [load])
  async function create(e: FormEvent<HTMLFormElement>) {
    e.preventDefault()
    const project = String(new FormData(e.currentTarget).get('project') ?? '').trim()
    try {
      const k = await admin.call<{ accessKeyId: string; secretAccessKey: string; key: Key }>(
        'POST',
        segments,
        { body: project ? { project } : {} },
      )
      props.onSecret({
        accessKeyId: k.accessKeyId,
        secretAccessKey: k.secretAccessKey,
        user: k.key.user,
        project: k.key.project,
      })
      await load()
    } catch (err) {
      setError(errorText(err))
    }
  }
  async function setStatus(k: Key, status: 'Active' | 'Inactive') {
    try {
      await admin.call('PATCH', ['keys', k.id], { body: { status } })
      await load()
    } catch (err) {
      setError(errorText(err))
    }
  }
  async function remove(k: Key) {
    await confirmThen(
      `Delete access key ${k.id}? Programs using it stop working.`,
      setError,
      async () => {
        await admin.call('DELETE', ['keys', k.id], { query: { user: k.user } })
        await load()
      },
    )
  }
  return (
    <div className="card" data-testid={props.user ? `keys-${props.user}` : 'my-keys'}>
      <div className="row">
        <h3>{props.title}</h3>
        {canManage && (
          <form className="row" onSubmit={(e) => void create(e)}>
            <select name="project" aria-label="Project of the new key" data-testid="key-project">
              <option value="">
                {user === undefined ? "this key's project" : "the user's default project"}
              </option>
              {projects.map((p) => (
                <option key={p} value={p}>
                  {p}
                </option>
              ))}
            </select>
            <button type="submit" data-testid="create-key">
              Create access key
            </button>
          </form>
        )}
      </div>
      {error && <p className="error">{error}</p>}
      {keys && keys.length === 0 && <p className="hint">No access keys.</p>}
      {keys && keys.length > 0 && (
        <table>
          <thead>
            <tr>
              <th>Key ID</th>
              <th>Project</th>
              <th>Status</th>
              <th>Age</th>
              <th>Last used</th>
              <th>Rotation due</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {keys.map((k) => {
              const warning = keyWarning(k)
              return (
                <tr key={k.id} data-testid="key-row" data-key-id={k.id}>
                  <td>
                    <code>{k.id}</code>
                  </td>
                  <td>{k.project}</td>
                  <td>
                    {k.status}
                    {warning && (
                      <span className="badge warn" data-testid="key-warning">
                        {warning}
                      </span>
                    )}
                  </td>
                  <td>{k.ageDays} d</td>
                  <td>{formatDate(k.lastUsed)}</td>
                  <td>{formatDate(k.rotationDue)}</td>
                  <td className="actions">
                    {canManage && (
                      <>
                        <button
                          type="button"
                          onClick={() =>
                            void setStatus(k, k.status === 'Active' ? 'Inactive' : 'Active')
                          }
                        >
                          {k.status === 'Active' ? 'Deactivate' : 'Activate'}
                        </button>
                        <button type="button" className="danger" onClick={() => void remove(k)}>
                          Delete
                        </button>
                      </>
                    )}
                  </td>
                </tr>
              )
            })}
          </tbody>
        </table>
      )}
    </div>
  )
}

/**
 * The projects a new key or role binding can name: every project when the caller may list them,
 * else those of its own key and role bindings (the gateway checks the choice again).
 */
function useProjectNames(): string[] {
  const { admin, me } = useSession()
  const own = [
    ...new Set(
      [me.project, ...me.roles.map((r) => r.project)].filter((p): p is string => p !== undefined),
    ),
  ].sort()
  const [all, setAll] = useState<string[] | undefined>()
  useEffect(() => {
    if (!me.capabilities.viewProjects) return
    admin.call<{ projects: Project[] }>('GET', ['projects']).then(
      (r) => setAll(r.projects.map((p) => p.name).sort()),
      () => setAll(undefined),
    )
  }, [admin, me.capabilities.viewProjects])
  return all ?? own
}

function Users({ onSecret }: { onSecret(s: NewSecret): void }) {
  const { admin, me } = useSession()
  const caps = me.capabilities
  const [users, setUsers] = useState<User[] | undefined>()
  const [open, setOpen] = useState<string | undefined>()
  const [error, setError] = useState<string | undefined>()
  const load = useCallback(async () => {
    try {
      setUsers((await admin.call<{ users: User[] }>('GET', ['users'])).users)
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
    try {
      await admin.call('POST', ['users'], {
        body: { name: String(f.get('name') ?? '').trim(), kind: String(f.get('kind')) },
      })
      form.reset()
      setError(undefined)
      await load()
    } catch (err) {
      setError(errorText(err))
    }
  }
  return (
    <div className="card" data-testid="users">
      <h3>Users</h3>
      {caps.manageUsers && (
        <form className="row" onSubmit={(e) => void create(e)} data-testid="create-user">
          <input name="name" required placeholder="user name" aria-label="New user name" />
          <select name="kind" aria-label="Kind">
            <option value="person">person</option>
            <option value="service">service</option>
          </select>
          <button type="submit">Create user</button>
        </form>
      )}
      {error && <p className="error">{error}</p>}
      {users && (
        <table>
          <thead>
            <tr>
              <th>User</th>
              <th>Kind</th>
              <th>Roles</th>
              <th>Policies</th>
              <th>Created</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {users.map((u) => (
              <UserRow
                key={u.name}
                user={u}
                open={open === u.name}
                toggle={() => setOpen(open === u.name ? undefined : u.name)}
                reload={load}
                onSecret={onSecret}
              />
            ))}
          </tbody>
        </table>
      )}
    </div>
  )
}

function UserRow(props: {
  user: User
  open: boolean
  toggle(): void
  reload(): Promise<void>
  onSecret(s: NewSecret): void
}) {
  const { admin, me } = useSession()
  const caps = me.capabilities
  const u = props.user
  const projects = useProjectNames()
  const [error, setError] = useState<string | undefined>()
  async function act(fn: () => Promise<unknown>) {
    try {
      await fn()
      setError(undefined)
      await props.reload()
    } catch (err) {
      setError(errorText(err))
    }
  }
  async function bind(e: FormEvent<HTMLFormElement>) {
    e.preventDefault()
    const f = new FormData(e.currentTarget)
    const role = String(f.get('role'))
    const project = String(f.get('project') ?? '').trim()
    await act(() =>
      admin.call('POST', ['users', u.name, 'roles'], {
        body: PROJECT_ROLES.includes(role) ? { role, project } : { role },
      }),
    )
  }
  return (
    <>
      <tr data-testid={`user-${u.name}`}>
        <td>
          {u.name}
          {u.disabled && <span className="badge warn">disabled</span>}
        </td>
        <td>{u.kind}</td>
        <td>{u.roles.map((r) => (r.project ? `${r.role}@${r.project}` : r.role)).join(', ')}</td>
        <td>{[...u.attached, ...u.policies.map((p) => `${p} (inline)`)].join(', ')}</td>
        <td>{formatDate(u.created)}</td>
        <td>
          <button type="button" onClick={props.toggle} data-testid={`open-user-${u.name}`}>
            {props.open ? 'Close' : 'Manage'}
          </button>
        </td>
      </tr>
      {props.open && (
        <tr className="detail">
          <td colSpan={6}>
            {error && <p className="error">{error}</p>}
            <div className="row">
              {u.roles.map((r) => (
                <span key={`${r.role}@${r.project ?? ''}`} className="badge">
                  {r.project ? `${r.role}@${r.project}` : r.role}
                  {caps.bindRoles && (
                    <button
                      type="button"
                      className="link"
                      aria-label={`Remove role ${r.role}`}
                      onClick={() =>
                        void act(() =>
                          admin.call('DELETE', ['users', u.name, 'roles'], {
                            query: { role: r.role, project: r.project },
                          }),
                        )
                      }
                    >
                      ×
                    </button>
                  )}
                </span>
              ))}
            </div>
            {caps.bindRoles && (
              <form className="row" onSubmit={(e) => void bind(e)}>
                <select name="role" aria-label="Role">
                  {[...ACCOUNT_ROLES, ...PROJECT_ROLES].map((r) => (
                    <option key={r} value={r}>
                      {r}
                    </option>
                  ))}
                </select>
                <select name="project" aria-label="Project">
                  <option value="">no project (account roles)</option>
                  {projects.map((p) => (
                    <option key={p} value={p}>
                      {p}
                    </option>
                  ))}
                </select>
                <button type="submit">Bind role</button>
              </form>
            )}
            {caps.manageUsers && (
              <div className="row">
                <button
                  type="button"
                  onClick={() =>
                    void act(() =>
                      admin.call('POST', ['users', u.name, u.disabled ? 'enable' : 'disable']),
                    )
                  }
                >
                  {u.disabled ? 'Enable user' : 'Disable user'}
                </button>
                <button
                  type="button"
                  className="danger"
                  onClick={() => {
                    if (window.confirm(`Delete user ${u.name} with all its keys?`))
                      void act(() => admin.call('DELETE', ['users', u.name]))
                  }}
                >
                  Delete user
                </button>
              </div>
            )}
            <AttachedPolicies user={u.name} attached={u.attached} />
            <KeyList
              title={`Access keys of ${u.name}`}
              user={u.name}
              canManage={caps.issueKeys}
              onSecret={props.onSecret}
            />
          </td>
        </tr>
      )}
    </>
  )
}

function Projects() {
  const { admin, me } = useSession()
  const [projects, setProjects] = useState<Project[] | undefined>()
  const [error, setError] = useState<string | undefined>()
  const load = useCallback(async () => {
    try {
      setProjects((await admin.call<{ projects: Project[] }>('GET', ['projects'])).projects)
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
    const description = String(f.get('description') ?? '').trim()
    try {
      await admin.call('POST', ['projects'], {
        body: {
          name: String(f.get('name') ?? '').trim(),
          ...(description ? { description } : {}),
        },
      })
      form.reset()
      await load()
    } catch (err) {
      setError(errorText(err))
    }
  }
  return (
    <div className="card" data-testid="projects">
      <h3>Projects</h3>
      {me.capabilities.manageProjects && (
        <form className="row" onSubmit={(e) => void create(e)} data-testid="create-project">
          <input name="name" required placeholder="project name" aria-label="New project name" />
          <input name="description" placeholder="description" aria-label="Description" />
          <button type="submit">Create project</button>
        </form>
      )}
      {error && <p className="error">{error}</p>}
      {projects && (
        <table>
          <thead>
            <tr>
              <th>Project</th>
              <th>Description</th>
              <th>Buckets</th>
              <th>Members</th>
              <th>Created</th>
            </tr>
          </thead>
          <tbody>
            {projects.map((p) => (
              <tr key={p.name} data-testid={`project-${p.name}`}>
                <td>{p.name}</td>
                <td>{p.description ?? ''}</td>
                <td>{p.buckets}</td>
                <td>{p.members}</td>
                <td>{formatDate(p.created)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  )
}
