// Realistic tenant databases for the demo and the tests: campaigns, ads with BLOB creatives and
// unicode headlines, a WITHOUT ROWID budget table, a large tracking_events table, and an audit log
// with no primary key. Deterministic for a given seed.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export const DEMO_SCHEMA = `
CREATE TABLE campaigns (
  id INTEGER PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL, starts_at TEXT NOT NULL, notes TEXT);
CREATE TABLE ads (
  id INTEGER PRIMARY KEY, campaign_id INTEGER NOT NULL REFERENCES campaigns(id),
  headline TEXT NOT NULL, creative BLOB, cpc REAL);
CREATE TABLE budgets (
  campaign_id INTEGER NOT NULL, day TEXT NOT NULL, spend_cents INTEGER NOT NULL,
  PRIMARY KEY (campaign_id, day)) WITHOUT ROWID;
CREATE TABLE tracking_events (
  seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, ad_id INTEGER, kind TEXT NOT NULL,
  occurred_at TEXT NOT NULL, user_agent TEXT, payload TEXT);
CREATE TABLE audit_log (at TEXT NOT NULL, actor TEXT, action TEXT NOT NULL, detail TEXT);
`;

export const HEADLINES = ['Summer sale ☀️', 'Über-fast delivery', 'Café crème — 2 for 1', '東京で特別価格', 'Ñandú outdoor gear', 'Zero-fee banking 💳'];
export const KINDS = ['view', 'click', 'beacon', 'conversion'];

/** A small deterministic PRNG (mulberry32), so every run of the demo builds the same data. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function createTenantDatabase(directory: string, database: string, trackingRows: number, seed = 1): string {
  mkdirSync(directory, { recursive: true });
  const file = join(directory, `${database}.db`);
  const db = new Database(file);
  const rnd = random(seed);
  try {
    db.pragma('journal_mode = WAL');
    db.exec(DEMO_SCHEMA);
    const campaigns = 5 + Math.floor(rnd() * 10);
    db.transaction(() => {
      const insCampaign = db.prepare('INSERT INTO campaigns VALUES (?, ?, ?, ?, ?)');
      const insAd = db.prepare('INSERT INTO ads VALUES (?, ?, ?, ?, ?)');
      const insBudget = db.prepare('INSERT INTO budgets VALUES (?, ?, ?)');
      const insEvent = db.prepare('INSERT INTO tracking_events VALUES (?, ?, ?, ?, ?, ?, ?)');
      const insAudit = db.prepare('INSERT INTO audit_log VALUES (?, ?, ?, ?)');
      let adId = 0;
      for (let c = 1; c <= campaigns; c++) {
        insCampaign.run(c, `${database} campaign ${c}`, rnd() < 0.8 ? 'active' : 'paused', `2026-0${1 + (c % 9)}-01`, rnd() < 0.5 ? null : `note ${c}`);
        for (let a = 0; a < 4; a++) {
          adId++;
          const creative = rnd() < 0.2 ? null : Buffer.from(Array.from({ length: 64 + Math.floor(rnd() * 512) }, () => Math.floor(rnd() * 256)));
          insAd.run(adId, c, HEADLINES[adId % HEADLINES.length], creative, rnd() < 0.1 ? null : Math.round(rnd() * 500) / 100);
        }
        for (let d = 1; d <= 14; d++) insBudget.run(c, `2026-11-${String(d).padStart(2, '0')}`, Math.floor(rnd() * 100000));
        insAudit.run('2026-11-01T00:00:00Z', rnd() < 0.3 ? null : 'ops@example.com', 'campaign.created', null);
        insAudit.run('2026-11-01T00:00:00Z', rnd() < 0.3 ? null : 'ops@example.com', 'campaign.created', null);
      }
      for (let i = 1; i <= trackingRows; i++) {
        const hex = Math.floor(rnd() * 0xffffffff).toString(16).padStart(8, '0');
        insEvent.run(i, `${database}-${i}-${hex}`, 1 + Math.floor(rnd() * adId), KINDS[Math.floor(rnd() * KINDS.length)],
          new Date(Date.UTC(2026, 10, 1) + i * 1000).toISOString(), rnd() < 0.15 ? null : 'Mozilla/5.0 (X11; Linux x86_64)',
          JSON.stringify({ page: `/p/${i % 97}`, ref: rnd() < 0.5 ? null : 'newsletter', v: rnd() }));
      }
    })();
  } finally {
    db.close();
  }
  return file;
}
