import { useCallback, useEffect, useMemo, useState } from 'react'
import { AdminClient, errorText, makeS3, signIn, type Whoami } from './clients.ts'
import { BucketsPage } from './pages/buckets.tsx'
import { ClusterPage } from './pages/cluster.tsx'
import { IdentityPage } from './pages/identity.tsx'
import { ObjectsPage } from './pages/objects.tsx'
import { SignInPage } from './pages/sign-in.tsx'
import { href, useRoute } from './route.ts'
import { type Credentials, clearSession, loadSession, saveSession } from './session.ts'
import { type Session, SessionContext } from './session-context.ts'

export function App() {
  const [creds, setCreds] = useState<Credentials | undefined>(() => loadSession())
  const [me, setMe] = useState<Whoami | undefined>()
  const [error, setError] = useState<string | undefined>()

  const signOut = useCallback(() => {
    clearSession()
    setCreds(undefined)
    setMe(undefined)
    window.location.hash = ''
  }, [])

  // A reload keeps the tab's session: ask again who it is (the key may be gone since).
  useEffect(() => {
    if (creds === undefined || me !== undefined) return
    signIn(creds).then(setMe, (err: unknown) => {
      clearSession()
      setCreds(undefined)
      setError(errorText(err))
    })
  }, [creds, me])

  const session = useMemo<Session | undefined>(
    () =>
      creds && me
        ? { creds, me, s3: makeS3(creds), admin: new AdminClient(creds), signOut }
        : undefined,
    [creds, me, signOut],
  )

  if (creds === undefined || session === undefined) {
    if (creds !== undefined) return <p className="loading">Signing in…</p>
    return (
      <SignInPage
        error={error}
        onSignedIn={(c, who) => {
          saveSession(c)
          setError(undefined)
          setCreds(c)
          setMe(who)
        }}
      />
    )
  }
  return (
    <SessionContext.Provider value={session}>
      <Shell />
    </SessionContext.Provider>
  )
}

function Shell() {
  const route = useRoute()
  return (
    <SessionContext.Consumer>
      {(s) =>
        s && (
          <div className="shell">
            <header className="top">
              <span className="brand">Tessera</span>
              <nav>
                <a href={href(['buckets'])} className={active(route.segments[0], 'buckets')}>
                  Buckets
                </a>
                {(s.me.capabilities.viewUsers ||
                  s.me.capabilities.issueOwnKeys ||
                  s.me.capabilities.viewProjects) && (
                  <a
                    href={href(['identity'])}
                    className={active(route.segments[0], 'identity')}
                    data-testid="nav-identity"
                  >
                    Identity
                  </a>
                )}
                {s.me.capabilities.viewCluster && (
                  <a
                    href={href(['cluster'])}
                    className={active(route.segments[0], 'cluster')}
                    data-testid="nav-cluster"
                  >
                    Cluster
                  </a>
                )}
              </nav>
              <span className="who" data-testid="whoami">
                {s.me.root ? 'root' : s.me.name}
                <small>
                  {' '}
                  {s.me.kind}
                  {s.me.project ? ` · project ${s.me.project}` : ''}
                  {s.me.roles.length > 0
                    ? ` · ${s.me.roles.map((r) => (r.project ? `${r.role}@${r.project}` : r.role)).join(', ')}`
                    : ''}
                </small>
              </span>
              <button type="button" className="sign-out" onClick={s.signOut} data-testid="sign-out">
                Sign out
              </button>
            </header>
            <main>
              <Page segments={route.segments} params={route.params} />
            </main>
          </div>
        )
      }
    </SessionContext.Consumer>
  )
}

function active(current: string | undefined, name: string): string {
  return (current ?? 'buckets') === name ? 'active' : ''
}

function Page({ segments, params }: { segments: string[]; params: URLSearchParams }) {
  const [first, second] = segments
  if (first === 'identity') return <IdentityPage />
  if (first === 'cluster') return <ClusterPage />
  if (first === 'buckets' && second !== undefined)
    return <ObjectsPage bucket={second} prefix={params.get('prefix') ?? ''} />
  return <BucketsPage />
}
