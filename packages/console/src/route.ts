/**
 * Routing in the URL fragment (#/buckets/photos?prefix=2024/): the gateway serves one page,
 * and the fragment never reaches a server. It holds names only, never a credential.
 */
import { useEffect, useState } from 'react'

export interface Route {
  /** Path segments after '#/', decoded. */
  segments: string[]
  params: URLSearchParams
}

export function parseHash(hash: string): Route {
  const h = hash.replace(/^#\/?/, '')
  const q = h.indexOf('?')
  const path = q < 0 ? h : h.slice(0, q)
  return {
    segments: path === '' ? [] : path.split('/').map((s) => decodeURIComponent(s)),
    params: new URLSearchParams(q < 0 ? '' : h.slice(q + 1)),
  }
}

export function href(segments: string[], params?: Record<string, string | undefined>): string {
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(params ?? {})) if (v !== undefined && v !== '') q.set(k, v)
  const qs = q.toString()
  return `#/${segments.map(encodeURIComponent).join('/')}${qs ? `?${qs}` : ''}`
}

export function navigate(segments: string[], params?: Record<string, string | undefined>): void {
  window.location.hash = href(segments, params)
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseHash(window.location.hash))
  useEffect(() => {
    const on = () => setRoute(parseHash(window.location.hash))
    window.addEventListener('hashchange', on)
    return () => window.removeEventListener('hashchange', on)
  }, [])
  return route
}
