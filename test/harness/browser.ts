/**
 * A real browser for end-to-end tests: Debian's chromium, installed by the test's own setup
 * when missing, driven headless by playwright-core (which brings no browser of its own).
 *
 * @example
 * const browser = await launchBrowser(t)
 * const page = await browser.newPage()
 * await page.goto(url)
 */
import { type Browser, chromium, type Page } from 'playwright-core'
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

/** Where every gateway serves the web console. */
export const CONSOLE_PATH = '/_tessera/console/'

/**
 * A new page in its own context (so sessions do not mix) that accepts confirm() dialogs and
 * downloads, and records CSP violations and page errors into `problems`.
 */
export async function consolePage(browser: Browser, problems: string[]): Promise<Page> {
  const context = await browser.newContext({ acceptDownloads: true })
  const page = await context.newPage()
  page.on('dialog', (d) => void d.accept())
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text()))
      problems.push(m.text())
  })
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`))
  return page
}

/** Opens the console on `endpoint` and signs in with a key and its secret. */
export async function signInToConsole(
  page: Page,
  endpoint: string,
  creds: { accessKeyId: string; secretAccessKey: string },
): Promise<void> {
  await page.goto(`${endpoint}${CONSOLE_PATH}`)
  await page.getByTestId('access-key').fill(creds.accessKeyId)
  await page.getByTestId('secret-key').fill(creds.secretAccessKey)
  await page.getByTestId('sign-in').click()
  await page.getByTestId('whoami').waitFor()
}

/** Whether the page shows an element with this test id now. */
export async function showsTestId(page: Page, testId: string): Promise<boolean> {
  return (await page.getByTestId(testId).count()) > 0
}
