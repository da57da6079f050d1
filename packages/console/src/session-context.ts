import type { S3Client } from '@aws-sdk/client-s3'
import { createContext, useContext } from 'react'
import type { AdminClient, Whoami } from './clients.ts'
import type { Credentials } from './session.ts'

export interface Session {
  creds: Credentials
  s3: S3Client
  admin: AdminClient
  me: Whoami
  signOut(): void
}

export const SessionContext = createContext<Session | undefined>(undefined)

export function useSession(): Session {
  const s = useContext(SessionContext)
  if (s === undefined) throw new Error('useSession outside a signed-in page')
  return s
}
