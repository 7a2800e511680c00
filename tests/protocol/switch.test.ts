// The fenced switch of primary, called as the worker calls it, over real SQLite files.
import { BlobServiceClient } from '@azure/storage-blob';
import { join } from 'node:path';
import { createActivities } from '../../activities';
import { Catalog } from '../../ingestion/catalog';
import { catalogRoutes } from '../../ingestion/routes';
import { SqliteEngine } from '../../engines/sqlite';
import { sqliteDirectory } from '../../config/fleet';
import { makeFleet } from '../helpers/stack';

test('a switch retried after its release keeps the first watermark, so events written since still flow back', async () => {
  const { fleet, dir, cleanup } = makeFleet({ tenants: 1, rows: 50 });
  const catalog = new Catalog(fleet.catalog.path);
  try {
    const tenant = fleet.tenants[0];
    const source = new SqliteEngine(sqliteDirectory(fleet.sources.onprem));
    const target = new SqliteEngine(sqliteDirectory(fleet.targets.cloud));
    await source.ensureOutbox(tenant.database);
    await target.restore(tenant.database, await source.snapshot(tenant.database, join(dir, 'work', 'snap.sqlite')), 'm1');
    // No network is used: the container is only there to satisfy the activities' dependencies.
    const container = BlobServiceClient.fromConnectionString('UseDevelopmentStorage=true').getContainerClient('unused');
    const activities = createActivities({ fleet, container, catalog, routes: catalogRoutes(catalog) });

    const first = await activities.switchPrimary(tenant.id, 'm1', 'target', { fromSeq: 0, chunkRows: 100, verifyTrackingAfter: null });
    expect(catalog.get(tenant.id)?.primary).toBe('target');

    // Released: the new primary takes events (with its outbox) before the activity could report back.
    const writer = target.openEventWriter(tenant.database);
    writer.write(['after-1', 'after-2', 'after-3'].map((event_id) => ({ event_id, kind: 'view', ad_id: 1, occurred_at: '2026-11-27T00:00:00Z', user_agent: null, payload: null })), true);
    writer.close();

    const retried = await activities.switchPrimary(tenant.id, 'm1', 'target', { fromSeq: 0, chunkRows: 100, verifyTrackingAfter: null });
    expect(retried.reverseFrom).toBe(first.reverseFrom);
    expect(await activities.replicationLag(tenant.id, 'm1', 'reverse', retried.reverseFrom)).toMatchObject({ lag: 3 });

    // The switch back (a rollback) drains exactly those events to the source, from that watermark.
    await activities.switchPrimary(tenant.id, 'm1', 'source', { chunkRows: 100 });
    expect(catalog.get(tenant.id)?.primary).toBe('source');
    const table = (await source.listTables(tenant.database)).find((t) => t.name === 'tracking_events')!;
    const rows = await source.rowDigests(tenant.database, table, { lower: [50], upper: null });
    expect(rows.map((r) => r.key)).toEqual(['seq=51', 'seq=52', 'seq=53']);
  } finally {
    catalog.close();
    cleanup();
  }
});
