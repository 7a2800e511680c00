// Headless Chromium (Debian's package, never a downloaded browser) driven by playwright-core: the
// demo's screenshot of the war room, and the browser tests.
import { chromium, type Browser } from 'playwright-core';
import { existsSync } from 'node:fs';
import { OperatorError } from './waves';

export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'];

/** Where Debian's chromium package puts the browser. */
export const DEBIAN_CHROMIUM = '/usr/bin/chromium';

export function chromiumPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.AIRLIFT_CHROMIUM || DEBIAN_CHROMIUM;
}

export async function launchChromium(): Promise<Browser> {
  const executablePath = chromiumPath();
  if (!existsSync(executablePath)) throw new OperatorError(`Chromium not found at ${executablePath}; run \`npx airlift setup\` (installs it with apt-get as root, or says what to run) or set AIRLIFT_CHROMIUM to its path`);
  return chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true });
}

/**
 * Saves a PNG of the war room at 1366x768 once it shows `tenants` tenants, all ended: the fleet's
 * totals, the needs-you lane, the wave cards and every row.
 */
export async function screenshotWarRoom(url: string, file: string, tenants: number): Promise<void> {
  const browser = await launchChromium();
  try {
    // The wall screen most war rooms have: every column, the needs-you lane and the fleet's totals fit.
    const page = await browser.newPage({ viewport: { width: 1366, height: 768 } });
    await page.goto(url);
    const ended = page.locator('#rows .row[data-state="completed"], #rows .row[data-state="rolled_back"], #rows .row[data-state="failed"]');
    for (const until = Date.now() + 30000; (await ended.count()) < tenants; await page.waitForTimeout(200))
      if (Date.now() > until) throw new OperatorError(`the war room did not show ${tenants} ended tenants within 30 s; no screenshot taken`);
    await page.locator('#totals', { hasText: `of ${tenants} on Azure` }).waitFor();
    await page.mouse.move(0, 0);
    await page.screenshot({ path: file, fullPage: true });
  } finally {
    await browser.close();
  }
}
