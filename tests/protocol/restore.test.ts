// The restoring step's one protocol rule (protocol/restore.ts): whatever the restorer, the restored
// database is a standby target of this migration when the step ends. The restorer here is a TEST
// DOUBLE that does what LRS does to a database (issue 20, defect 1): brings the backup online as it
// was, the source's gate `open` and capture triggers included, and nothing more. The target engine
// is airlift's real SQLite engine over the restored file.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createTenantDatabase } from '../../cli/demo-data';
import { SqliteEngine } from '../../engines/sqlite';
import type { Artifact, RestoreTarget } from '../../engines/engine';
import { restoreAsStandby } from '../../protocol/restore';
import { TargetInUseError } from '../../protocol/errors';

let dir: string;
let source: SqliteEngine;
let target: SqliteEngine;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'airlift-restore-step-'));
  source = new SqliteEngine(join(dir, 'source'));
  target = new SqliteEngine(join(dir, 'target'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Restores as a Managed Instance does: the backup's bytes come online unchanged. */
function asIsRestorer(continuous = false): RestoreTarget {
  return {
    restoresFrom: 'file',
    probe: async () => ({ exists: false }),
    async restore(database, artifact) {
      mkdirSync(join(dir, 'target'), { recursive: true });
      copyFileSync((artifact as Artifact).file, target.fileOf(database));
    },
    dropRestored: async () => false,
    describe: () => 'a restorer that changes nothing in what it restores',
    planRestore: () => ({ phase: 'restoring', action: '', detail: [] }),
    ...(continuous ? { continuous: { state: async () => ({ status: 'Restoring', online: false, filesDetected: 1, filesQueued: 0, filesRestoring: 0, filesRestored: 1 }), complete: async () => undefined } } : {}),
  };
}

async function journaledSnapshot(migrationId: string): Promise<Artifact> {
  createTenantDatabase(join(dir, 'source'), 'tenant_a', 50);
  await source.startCapture('tenant_a');
  await source.setWriteGate('tenant_a', { state: 'open', migrationId });
  return source.snapshot('tenant_a', join(dir, 'snapshot.sqlite'));
}

const gateIn = (file: string) => {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare('SELECT state, migration_id FROM airlift_gate').all();
  } finally {
    db.close();
  }
};

test('a database restored as its backup carried it (the source gate open) ends the step standby for this migration, and takes applied changes', async () => {
  const artifact = await journaledSnapshot('m-1');
  await restoreAsStandby(asIsRestorer(), target, 'tenant_a', artifact, 'm-1');
  expect(gateIn(target.fileOf('tenant_a'))).toEqual([{ state: 'standby', migration_id: 'm-1' }]);
  // The first forward apply, which a gate left open refused (defect 1), goes in.
  const [campaigns] = (await target.listTables('tenant_a')).filter((t) => t.name === 'campaigns');
  const row = [7001n, 'applied after the restore', 'active', '2026-01-01', null];
  await expect(target.applyChanges('tenant_a', 'm-1:source', 1, [{ table: campaigns, key: [7001n], row }])).resolves.toBe(1);
});

test('without the step the same restore leaves the gate open and the first forward apply is refused (what the step prevents)', async () => {
  const artifact = await journaledSnapshot('m-1');
  await asIsRestorer().restore('tenant_a', artifact, 'm-1');
  expect(gateIn(target.fileOf('tenant_a'))).toEqual([{ state: 'open', migration_id: 'm-1' }]);
  const [campaigns] = (await target.listTables('tenant_a')).filter((t) => t.name === 'campaigns');
  await expect(target.applyChanges('tenant_a', 'm-1:source', 1, [{ table: campaigns, key: [7001n], row: [7001n, 'x', 'active', '2026-01-01', null] }])).rejects.toThrow(/write gate is open/);
});

test('a target that keeps restoring log backups is not connected to (its gate is closed by the cut-over)', async () => {
  const artifact = await journaledSnapshot('m-1');
  await restoreAsStandby(asIsRestorer(true), target, 'tenant_a', artifact, 'm-1', undefined, undefined, { keepRestoring: true });
  expect(gateIn(target.fileOf('tenant_a'))).toEqual([{ state: 'open', migration_id: 'm-1' }]);
});

test("a restored gate another migration holds is not this restore's to close", async () => {
  const artifact = await journaledSnapshot('m-0');
  await expect(restoreAsStandby(asIsRestorer(), target, 'tenant_a', artifact, 'm-1')).rejects.toThrow(TargetInUseError);
  expect(gateIn(target.fileOf('tenant_a'))).toEqual([{ state: 'open', migration_id: 'm-0' }]);
});
