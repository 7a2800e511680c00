// The war-room page with a thousand tenants in headless Chromium: the time to apply an update that
// changes every row and one that changes ten, beside the page's first full render (the reference),
// and the time a filter takes to answer a click. Script time as the page measures it
// (performance.measure), so layout of off-screen rows, which content-visibility skips, is not in it.
import type { Page } from 'playwright-core';
import { launchChromium } from '../cli/browser';
import { createWarRoom } from '../cli/war-room';
import { listenGateway } from '../ingestion/gateway';
import { percentile } from '../cli/waves';
import { SyntheticFeed } from '../tests/helpers/synthetic-feed';

const TENANTS = 1000;

async function measures(page: Page, name: string, count: number): Promise<{ ms: number; rows: number }[]> {
  await page.evaluate(() => performance.clearMeasures());
  await page.waitForFunction(({ name, count }) => performance.getEntriesByName(name).length >= count, { name, count }, { timeout: 60000 });
  return page.evaluate((name) => performance.getEntriesByName(name).map((e) => ({ ms: e.duration, rows: (e as PerformanceMeasure).detail as number })), name);
}

const round = (n: number | null) => (n === null ? null : Math.round(n * 10) / 10);

export async function benchWarRoom(): Promise<Record<string, unknown>[]> {
  const feed = new SyntheticFeed(TENANTS);
  const warRoom = createWarRoom({ source: feed, intervalMs: 250 });
  const served = await listenGateway(warRoom, 0);
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1600, height: 900 } });
    await page.goto(served.url);
    await page.locator('#shown', { hasText: `showing ${TENANTS} of ${TENANTS} tenants` }).waitFor({ timeout: 60000 });
    const init = await page.evaluate(() => performance.getEntriesByName('war-room:init').map((e) => e.duration));
    const all = (await measures(page, 'war-room:update', 12)).filter((m) => m.rows === TENANTS).map((m) => m.ms);
    feed.moving = new Set(feed.rows.filter((_, i) => i % 100 === 0).map((r) => r.tenantId));
    await measures(page, 'war-room:update', 2);
    const ten = (await measures(page, 'war-room:update', 12)).filter((m) => m.rows === feed.moving!.size).map((m) => m.ms);
    const filters: number[] = [];
    for (const wave of ['w-odd', '', 'w-even', '', 'w-odd', '']) {
      const started = Date.now();
      await page.selectOption('#filter-wave', wave);
      await page.locator('#shown', { hasText: `showing ${wave ? TENANTS / 2 : TENANTS} of ${TENANTS} tenants` }).waitFor();
      filters.push(Date.now() - started);
    }
    const filterScript = (await page.evaluate(() => performance.getEntriesByName('war-room:filter').map((e) => e.duration))).slice(-filters.length);
    const row = (what: string, values: number[]) => ({
      case: what, samples: values.length, p50Ms: round(percentile(values, 50)), maxMs: round(values.length ? Math.max(...values) : null), referenceMs: round(init[0] ?? null),
    });
    return [
      row(`first render, ${TENANTS} rows (reference)`, init),
      row(`update, all ${TENANTS} rows changed`, all),
      row(`update, ${feed.moving.size} rows changed`, ten),
      row('filter by wave: the page applying it', filterScript),
      row('filter by wave: click to count shown, through playwright', filters),
    ];
  } finally {
    await browser.close();
    warRoom.close();
    await served.stop();
  }
}
