// The console is built into dist/ with hashed asset names; the gateway serves dist/ under
// /_tessera/console/ with a strict Content-Security-Policy, so nothing may be inlined: no
// inline scripts or styles, and the module preload polyfill stays inside the entry chunk.
import react from '@vitejs/plugin-react'
import { defineConfig } from 'vite'

export default defineConfig({
  base: '/_tessera/console/',
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Never turn small assets into data: URLs inside CSS or JS; the CSP allows data: images only.
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 2000,
    modulePreload: { polyfill: false },
  },
})
