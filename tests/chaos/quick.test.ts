// The quick subset of the fault matrix (`npm run chaos -- --quick`): the nastiest cases on real
// processes (Temporal dev server, Azurite, two gateway nodes behind admin proxies, a worker process),
// each judged by the independent checker. And the checker itself, shown to fail a broken tenant.
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTenantDatabase } from '../../cli/demo-data';
import { check, schemaDigest } from '../../chaos/checker';
import { QUICK } from '../../chaos/matrix';
import { runMatrix } from '../../chaos/run';

describe('the fault matrix, quick subset', () => {
  it('loses no acknowledged event and strands no tenant in the nastiest cases', async () => {
    const lines: string[] = [];
    const { results, summary } = await runMatrix({ quick: true, bundle: process.env.AIRLIFT_TEST_WORKFLOW_BUNDLE, log: (l) => lines.push(l) });

    expect(results.map((r) => `${r.phase} x ${r.fault}`)).toEqual(QUICK.map((c) => `${c.phase} x ${c.fault}`));
    const failures = results
      .filter((r) => !r.verdict.ok)
      .map((r) => `${r.phase} x ${r.fault}: ${r.verdict.broken.map((b) => `[${b.invariant}] ${b.detail}`).join('; ')} (${r.notes.join(' / ')})`);
    expect(failures).toEqual([]);
    expect(summary).toMatchObject({ failed: 0, eventsLost: 0, eventsDuplicated: 0, strandedTenants: 0 });
    // Every case ran under live load through both gateway nodes.
    for (const r of results) expect(r.verdict.eventsAccepted).toBeGreaterThan(100);
  }, 900_000);
});

describe('the checker', () => {
  let dir: string;

  /** The checker's verdict on tenant t1, expected rolled back, with this catalog row and these acknowledged ids. */
  async function judgeRolledBack(sourceFile: string, before: { whole: string; tenantOnly: string }, catalogRow: string, acked: string[], appLost: string[] = []) {
    const catalog = new Database(join(dir, 'catalog.db'));
    catalog.exec(`CREATE TABLE tenants (tenant_id TEXT PRIMARY KEY, primary_side TEXT, write_mode TEXT, outbox INTEGER); INSERT INTO tenants VALUES ${catalogRow};`);
    catalog.close();
    return check({
      files: { tenantId: 't1', sourceFile, targetFile: join(dir, 'cloud', 'tenant_1.db'), trackingTable: 'tracking_events' },
      catalogFile: join(dir, 'catalog.db'),
      gateways: [],
      adminToken: 'unused-without-gateways',
      acked: new Set(acked),
      eventPrefix: 'load-t1-',
      sourceSchemaBefore: before,
      app: { lostOn: async () => appLost, writes: 3 },
      expected: 'rolled_back',
      ended: 'rolled_back',
    });
  }
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'airlift-checker-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('names every invariant a stranded, lossy tenant breaks', async () => {
    const sourceFile = createTenantDatabase(join(dir, 'source'), 'tenant_1', 50, 1);
    const before = { whole: schemaDigest(sourceFile), tenantOnly: schemaDigest(sourceFile, true) };
    const source = new Database(sourceFile);
    const insert = source.prepare("INSERT INTO tracking_events (event_id, kind, occurred_at) VALUES (?, 'view', '2026-01-01T00:00:00Z')");
    for (let i = 0; i < 8; i++) insert.run(`load-t1-${i}`);
    source.exec('CREATE INDEX left_behind ON campaigns (name)');
    source.exec("CREATE TABLE airlift_gate (id INTEGER PRIMARY KEY, state TEXT NOT NULL); INSERT INTO airlift_gate VALUES (1, 'fenced');");
    source.close();
    const verdict = await judgeRolledBack(sourceFile, before, "('t1', 'target', 'read_only', 1)", Array.from({ length: 10 }, (_, i) => `load-t1-${i}`), ['audit_log app-t1-3']);

    expect(verdict.ok).toBe(false);
    expect(verdict.broken.map((b) => b.invariant).sort()).toEqual(['app writes', 'catalog', 'events', 'fence', 'journaling', 'source', 'source', 'write mode']);
    expect(verdict.broken.find((b) => b.invariant === 'events')!.detail).toContain('2 of 10 acknowledged events missing on the source');
    expect(verdict).toMatchObject({ eventsAccepted: 10, eventsLost: 2, eventsDuplicated: 0, appWritesLost: 1, stranded: true });
  });

  it('passes a tenant that rolled back cleanly', async () => {
    const sourceFile = createTenantDatabase(join(dir, 'source'), 'tenant_1', 50, 1);
    const before = { whole: schemaDigest(sourceFile), tenantOnly: schemaDigest(sourceFile, true) };
    const source = new Database(sourceFile);
    source.prepare("INSERT INTO tracking_events (event_id, kind, occurred_at) VALUES ('load-t1-0', 'view', '2026-01-01T00:00:00Z')").run();
    source.close();
    const verdict = await judgeRolledBack(sourceFile, before, "('t1', 'source', 'read_write', 0)", ['load-t1-0']);
    expect(verdict.broken).toEqual([]);
  });
});
