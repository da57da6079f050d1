/**
 * The signed-in credentials. They live in memory, and in this tab's sessionStorage so that a
 * reload does not sign out; sign-out clears both. They are never put in a URL, a cookie or
 * localStorage, and never sent anywhere: every call is signed here with SigV4.
 */
export interface Credentials {
  accessKeyId: string
  secretAccessKey: string
  /** For temporary credentials (STS). */
  sessionToken?: string
  /** The region the gateway signs for (its `region` setting). */
  region: string
}

const STORAGE_KEY = 'tessera-console-session'

export function loadSession(): Credentials | undefined {
  try {
    const raw = sessionStorage.getItem(STORAGE_KEY)
    if (raw === null) return undefined
    const c = JSON.parse(raw) as Partial<Credentials>
    if (typeof c.accessKeyId !== 'string' || typeof c.secretAccessKey !== 'string') return undefined
    return {
      accessKeyId: c.accessKeyId,
      secretAccessKey: c.secretAccessKey,
      region: typeof c.region === 'string' ? c.region : 'us-east-1',
      ...(typeof c.sessionToken === 'string' ? { sessionToken: c.sessionToken } : {}),
    }
  } catch {
    return undefined
  }
}

export function saveSession(c: Credentials): void {
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(c))
}

export function clearSession(): void {
  sessionStorage.removeItem(STORAGE_KEY)
}
