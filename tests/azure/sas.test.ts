// The container's one restore SAS: every worker in a window signs the same token, a restore started
// anywhere in the window has at least the restore timeout left, and nothing outlives LRS's 30 days.
import { ContainerClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { ContainerReadAccess, LRS_MAX_DAYS, sasWindow } from '../../azure/sas';

const MINUTE = 60_000;
const key = Buffer.from('an-account-key-for-this-test-only-0123456789').toString('base64');
const container = () => new ContainerClient('https://acct.blob.core.windows.net/airlift-artifacts', new StorageSharedKeyCredential('acct', key));

test('a restore starting anywhere in a window has at least the restore timeout left, and at most twice it', () => {
  const start = Date.parse('2026-11-29T12:00:00Z');
  for (let at = start; at < start + 3 * 120 * MINUTE; at += 7 * MINUTE) {
    const w = sasWindow(120, at);
    expect(w.expiresOn.getTime() - at).toBeGreaterThanOrEqual(120 * MINUTE);
    expect(w.expiresOn.getTime() - at).toBeLessThanOrEqual(240 * MINUTE);
    expect(w.startsOn.getTime()).toBeLessThan(at);
  }
});

test('"A single LRS job can run for a maximum of 30 days": a longer timeout gets a SAS for 30 days, not more than twice that', () => {
  const w = sasWindow(90 * 24 * 60, Date.parse('2026-11-29T12:00:00Z'));
  expect(w.expiresOn.getTime() - w.startsOn.getTime()).toBeLessThanOrEqual(2 * LRS_MAX_DAYS * 24 * 60 * MINUTE + 15 * MINUTE);
});

test('two workers in one window make the very same read+list SAS for the whole container; the next window makes a new one', async () => {
  let now = Date.parse('2026-11-29T12:05:00Z');
  const one = new ContainerReadAccess(container(), () => now);
  const two = new ContainerReadAccess(container(), () => now + 30 * MINUTE);
  const a = await one.sas(120);
  expect((await two.sas(120)).token).toBe(a.token);
  const q = new URLSearchParams(a.token);
  expect([q.get('sp'), q.get('sr'), q.get('si')]).toEqual(['rl', 'c', null]);
  expect(a.expiresOn.getTime() - now).toBeGreaterThanOrEqual(120 * MINUTE);
  now += 120 * MINUTE;
  const b = await one.sas(120);
  expect(b.token).not.toBe(a.token);
  expect(b.expiresOn.getTime() - now).toBeGreaterThanOrEqual(120 * MINUTE);
});
