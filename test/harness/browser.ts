/**
 * A real browser for end-to-end tests: Debian's chromium, installed by the test's own setup
 * when missing, driven headless by playwright-core (which brings no browser of its own).
 *
 * @example
 * const browser = await launchBrowser(t)
 * const page = await browser.newPage()
 * await page.goto(url)
 */
import { type Browser, chromium } from 'playwright-core'
import { ensureDebianPackages } from './debian.ts'

/** Where Debian's chromium package puts the browser. */
export const CHROMIUM_PATH = '/usr/bin/chromium'

/**
 * Installs chromium if needed and launches it headless; the browser is closed on the test's
 * teardown.
 */
export async function launchBrowser(t: { teardown(fn: () => unknown): void }): Promise<Browser> {
  await ensureDebianPackages({ chromium: 'chromium' })
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    // Tests run as root in containers, where chromium's sandbox cannot start.
    args: ['--no-sandbox', '--disable-background-networking'],
  })
  t.teardown(() => browser.close())
  return browser
}
