import { type FormEvent, useState } from 'react'
import { errorText, signIn, type Whoami } from '../clients.ts'
import type { Credentials } from '../session.ts'

export function SignInPage(props: {
  error?: string | undefined
  onSignedIn(c: Credentials, me: Whoami): void
}) {
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<string | undefined>(props.error)
  const [temporary, setTemporary] = useState(false)

  async function submit(e: FormEvent<HTMLFormElement>) {
    e.preventDefault()
    const f = new FormData(e.currentTarget)
    const token = String(f.get('sessionToken') ?? '').trim()
    const creds: Credentials = {
      accessKeyId: String(f.get('accessKeyId') ?? '').trim(),
      secretAccessKey: String(f.get('secretAccessKey') ?? ''),
      region: String(f.get('region') ?? '').trim() || 'us-east-1',
      ...(temporary && token !== '' ? { sessionToken: token } : {}),
    }
    setBusy(true)
    setError(undefined)
    try {
      props.onSignedIn(creds, await signIn(creds))
    } catch (err) {
      setError(errorText(err))
    } finally {
      setBusy(false)
    }
  }

  return (
    <div className="sign-in">
      <h1>Tessera console</h1>
      <p className="hint">
        Sign in with an access key. It stays in this tab and signs every request here; the gateway
        decides what it may do.
      </p>
      <form onSubmit={(e) => void submit(e)} autoComplete="off">
        <label>
          Access key ID
          <input name="accessKeyId" required spellCheck={false} data-testid="access-key" />
        </label>
        <label>
          Secret access key
          <input
            name="secretAccessKey"
            type="password"
            required
            autoComplete="off"
            data-testid="secret-key"
          />
        </label>
        <label className="inline">
          <input
            type="checkbox"
            checked={temporary}
            onChange={(e) => setTemporary(e.target.checked)}
          />
          Temporary credentials (session token)
        </label>
        {temporary && (
          <label>
            Session token
            <textarea name="sessionToken" rows={3} spellCheck={false} />
          </label>
        )}
        <label>
          Region
          <input name="region" defaultValue="us-east-1" spellCheck={false} />
        </label>
        <button type="submit" disabled={busy} data-testid="sign-in">
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
      </form>
    </div>
  )
}
