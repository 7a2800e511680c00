// Item 11 of issue 7: the replicator reports after every batch, so a large backlog never outlives
// the heartbeat timeout; and it resumes from the cursor kept in the destination.
import { join } from 'node:path';
import { DEFAULT_TRACKING } from '../../config/fleet';
import { sqliteDirectory } from '../../engines/sqlite-kind';
import { SqliteEngine } from '../../engines/sqlite';
import { replicate, streamName, type ReplicationProgress } from '../../protocol/replicator';
import { makeFleet } from '../helpers/stack';

test('a backlog of 5,000 events is applied with a report after every batch, then resumed from the destination cursor', async () => {
  const { fleet, dir, cleanup } = makeFleet({ tenants: 1, rows: 10 });
  try {
    const db = fleet.tenants[0].database;
    const source = new SqliteEngine(sqliteDirectory(fleet.sources.onprem));
    const target = new SqliteEngine(sqliteDirectory(fleet.targets.cloud));
    await source.startCapture(db);
    await target.restore(db, await source.snapshot(db, join(dir, 'snap.sqlite')), 'm1');
    const writer = source.openEventWriter(db, DEFAULT_TRACKING);
    for (let i = 0; i < 5000; i += 100)
      await writer.write(Array.from({ length: 100 }, (_, j) => ({ event_id: `e-${i + j}`, kind: 'view', ad_id: 1, occurred_at: '2026-11-27T00:00:00Z', user_agent: null, payload: null })));
    await writer.close();
    const stream = { database: db, from: source, to: target, origin: 'source' as const, name: streamName('m1', 'source') };

    const reports: ReplicationProgress[] = [];
    const stop = new AbortController();
    const done = await replicate(stream, 0, stop.signal, (p) => {
      reports.push(p);
      if (p.applied === 2000) stop.abort(); // the activity is cancelled half way
    }, async () => undefined).catch(() => undefined);
    expect(done).toBeUndefined();
    expect(reports.map((r) => r.applied)).toEqual([500, 1000, 1500, 2000]);

    const resumed: ReplicationProgress[] = [];
    const again = new AbortController();
    await replicate(stream, 0, again.signal, (p) => {
      resumed.push(p);
      if (p.lag === 0) again.abort();
    }, async () => undefined).catch(() => undefined);
    expect(resumed[0].applied).toBe(500); // nothing applied twice: it started at the cursor 2,000
    expect(resumed[0].resumedFrom).toBe(2000);
    expect(resumed.at(-1)).toMatchObject({ cursor: 5000, lag: 0, applied: 3000 });
  } finally {
    cleanup();
  }
});
