// `airlift plan --check` for SQL Server sources: the preflight inventory (version, edition, recovery
// model, TDE, size against the instance's storage, compatibility level, users and their logins by
// SID, Agent jobs, cross-database references), each listed as ready / warning / blocking with the
// fix. The servers are FakeSqlServer, an in-process TEST DOUBLE that answers exactly the inventory
// statements (pinned below by snapshot) from state the tests change; the plan's text is the real one.
import { join } from 'node:path';
import { loadFleet } from '../../config/fleet';
import { planCommand, type CheckDeps } from '../../cli/plan';
import * as inventory from '../../engines/mssql-inventory';
import { renderStatement } from '../../engines/mssql-sql';
import { FakeSqlServer, fakeDatabase, type FakeServerState } from '../helpers/fake-sql-server';

const root = join(__dirname, '../..');
const GiB = 1024 ** 3;
const ENV = { AIRLIFT_DC1_PASSWORD: 'Hunter2-Sup3rSecret-dc1', AIRLIFT_MI_PASSWORD: 'MiPassw0rd-Sup3rSecret' };

const column = (table: string, name: string, type: string, keyOrdinal: number | null, more: object = {}) => ({
  schema_name: 'dbo', table_name: table, column_name: name, type_name: type, max_length: 4, precision: 10, scale: 0,
  is_nullable: false, is_identity: false, is_assembly_type: false, key_ordinal: keyOrdinal, key_is_primary: keyOrdinal ? true : null, ...more,
});

/** A SQL Server 2014 Standard source holding the three tenants of examples/fleet.mssql-to-mi.yaml. */
function sourceState(): FakeServerState {
  return {
    productVersion: '12.0.6024.0', engineEdition: 2, edition: 'Standard Edition (64-bit)',
    databases: {
      acme: fakeDatabase({
        recoveryModel: 'SIMPLE', sizeBytes: 40 * GiB,
        users: [{ name: 'acme_app', type: 'S', sid: 'AA01' }, { name: 'CORP\\reporting', type: 'G', sid: '0105000000000005150000001A' }],
        tables: [
          column('campaigns', 'id', 'int', 1), column('campaigns', 'name', 'varchar', null, { max_length: 100 }),
          column('campaigns', 'notes', 'nvarchar', null, { max_length: -1, is_nullable: true }), column('campaigns', 'budget', 'money', null, { precision: 19, scale: 4 }),
          column('audit_log', 'at', 'datetime2', null, { scale: 7, precision: 27, max_length: 8 }), column('audit_log', 'doc', 'xml', null, { max_length: -1, is_nullable: true }),
        ],
      }),
      globex: fakeDatabase({ sizeBytes: 30 * GiB, users: [{ name: 'globex_app', type: 'S', sid: 'BB02' }] }),
      initech_prod: fakeDatabase({
        sizeBytes: 20 * GiB, compatibilityLevel: 90, encrypted: true,
        users: [{ name: 'ghost', type: 'S', sid: 'CC03' }],
        references: [{ database: 'initech_billing', schema: 'dbo', object: 'v_invoices' }, { server: 'LEGACY01', database: 'hr', schema: 'dbo', object: 'usp_sync' }],
      }),
    },
    logins: [{ name: 'acme_app', sid: 'AA01', type: 'S' }, { name: 'globex_app', sid: 'BB02', type: 'S' }, { name: 'CORP\\reporting', sid: '0105000000000005150000001A', type: 'G' }],
    jobs: [{ name: 'acme nightly cleanup', step: 'purge', database: 'acme', enabled: true }],
    msdbReadable: true, canCreateDatabase: false, canAlterCredential: false,
  };
}

/** The Managed Instance's T-SQL side: Azure SQL (EngineEdition 8), with one of the logins already there. */
function targetState(): FakeServerState {
  return {
    productVersion: '12.0.2000.8', engineEdition: 8, edition: 'SQL Azure',
    databases: {}, logins: [{ name: 'acme_app', sid: 'AA01', type: 'S' }, { name: 'globex_app', sid: 'FFFF', type: 'S' }],
    jobs: [], msdbReadable: true, canCreateDatabase: true, canAlterCredential: true,
  };
}

function harness(storageGiB = 100) {
  const source = new FakeSqlServer(sourceState());
  const target = new FakeSqlServer(targetState());
  const deps: CheckDeps = {
    connect: async (e) => (e.engine === 'mssql' ? source : target).connect(),
    managedInstance: async (e) => ({ name: e.managedInstance, location: 'westeurope', storageBytes: storageGiB * GiB }),
    containerExists: async () => true,
  };
  const fleet = loadFleet(join(root, 'examples/fleet.mssql-to-mi.yaml'));
  const run = (json = false) => planCommand(fleet, fleet.tenants.map((t) => t.id), { check: true, json }, ENV, deps);
  return { source, target, run };
}

/** The lines of one tenant's readiness section. */
const section = (output: string, tenant: string) => output.split('== readiness ').find((s) => s.startsWith(`${tenant} `))!;

test('the inventory statements, exactly as sent (database names are validated and bracket-quoted)', () => {
  for (const statement of [
    inventory.serverInventoryQuery, inventory.databaseInventoryQuery('acme'), inventory.usersInventoryQuery('acme'), inventory.loginsInventoryQuery,
    inventory.agentJobsInventoryQuery('acme'), inventory.crossDatabaseInventoryQuery('acme'), inventory.backupPermissionQuery('acme'), inventory.restorePermissionsQuery,
  ])
    expect(renderStatement(statement)).toMatchSnapshot();
  // Names are parameters with their declared type (sysname is nvarchar(128)), or validated identifiers.
  expect(inventory.databaseInventoryQuery('acme').types).toEqual({ database: 'nvarchar(128)' });
  for (const hostile of ["x'; DROP DATABASE y --", 'a]b']) {
    expect(() => inventory.usersInventoryQuery(hostile)).toThrow(/not a valid SQL identifier/);
    expect(() => inventory.crossDatabaseInventoryQuery(hostile)).toThrow(/not a valid SQL identifier/);
  }
});

test('a SIMPLE recovery model blocks a Managed Instance restore; fixed on the server, the next check is ready', async () => {
  // LRS prerequisites: the source databases must use the full recovery model.
  const { source, run } = harness();
  const first = await run();
  expect(first.exitCode).toBe(1);
  expect(source.open).toBe(0); // --check closes what it opened
  const acme = section(first.output, 'acme');
  expect(acme).toContain('BLOCKING  recovery model: SIMPLE\n          fix: ALTER DATABASE [acme] SET RECOVERY FULL;');
  source.state.databases.acme.recoveryModel = 'FULL';
  const second = await run();
  expect(section(second.output, 'acme')).toContain('ready     recovery model: FULL');
  expect(section(second.output, 'acme')).not.toContain('BLOCKING  recovery model');
});

test('compatibility level below 100, TDE and cross-database references are reported with their fixes', async () => {
  // Managed Instance supports compatibility level 100 and higher; TDE needs the certificate on the target.
  const { output } = await harness().run();
  const initech = section(output, 'initech');
  expect(initech).toContain('BLOCKING  compatibility level: 90: Managed Instance supports 100 and higher\n          fix: ALTER DATABASE [initech_prod] SET COMPATIBILITY_LEVEL = 100');
  expect(initech).toContain('WARNING   TDE: the database is encrypted with TDE');
  expect(initech).toContain('fix: upload the TDE certificate to the Managed Instance first');
  expect(initech).toContain('WARNING   reference to initech_billing: dbo.v_invoices name initech_billing');
  expect(initech).toContain('WARNING   reference to LEGACY01.hr: dbo.usp_sync name LEGACY01.hr');
});

test('users map to target logins by SID: matching, same name with another SID, missing, and Windows principals', async () => {
  // "Troubleshoot orphaned users": a user whose SID has no login is orphaned; ALTER USER … WITH LOGIN
  // remaps it, CREATE LOGIN … WITH SID = … creates the login it expects.
  const { output } = await harness().run();
  expect(section(output, 'acme')).toContain('ready     user acme_app: maps to login acme_app on the target by SID');
  expect(section(output, 'acme')).toContain('WARNING   user CORP\\reporting: Windows group');
  expect(section(output, 'globex')).toContain('WARNING   user globex_app: login globex_app exists on the target with another SID: the restored user would be orphaned\n          fix: after the restore: ALTER USER [globex_app] WITH LOGIN = [globex_app]');
  expect(section(output, 'initech')).toContain('WARNING   user ghost: orphaned on the source already (SID 0xCC03 has no login)');
});

test('the databases bound for one instance are summed against its reserved storage', async () => {
  // 40 + 30 + 20 GiB = 90 GiB: over 80 GiB blocks, over 90% of 95 GiB warns, 200 GiB is ready.
  const tight = section((await harness(80).run()).output, 'acme');
  expect(tight).toContain('BLOCKING  size: 40.0 GiB; all tenants bound for this instance: 90.0 GiB of 80.0 GiB reserved storage');
  expect(section((await harness(95).run()).output, 'acme')).toContain('WARNING   size: 40.0 GiB; all tenants bound for this instance: 90.0 GiB of 95.0 GiB');
  expect(section((await harness(200).run()).output, 'acme')).toContain('ready     size: 40.0 GiB');
});

test('Agent jobs that run in the database are listed; an unreadable msdb is said, not hidden', async () => {
  const h = harness();
  expect(section((await h.run()).output, 'acme')).toContain('WARNING   Agent job acme nightly cleanup: step "purge" runs in acme; Agent jobs stay on the source');
  h.source.state.msdbReadable = false;
  expect(section((await h.run()).output, 'acme')).toContain('WARNING   Agent job (msdb not readable by this login)');
});

test('version, edition and collation: 2014 Standard compresses but cannot run change capture; 2016 RTM neither, 2016 SP1 can; Express does not compress; a newer source than the target blocks', async () => {
  const h = harness();
  const acme = section((await h.run()).output, 'acme');
  // Issue 20, defect 4: capture's T-SQL uses CREATE OR ALTER ("CREATE TRIGGER (Transact-SQL)": SQL
  // Server 2016 (13.x) SP1 and later), CURRENT_TRANSACTION_ID() and SESSION_CONTEXT (2016 and later).
  expect(acme).toContain('BLOCKING  version: 12.0.6024.0 (SQL Server 2014), Standard Edition (64-bit): change capture needs SQL Server 2016 SP1 (13.0.4001) or later: its triggers use CREATE OR ALTER, CURRENT_TRANSACTION_ID() and SESSION_CONTEXT, which 12.0.6024.0 does not accept');
  expect(acme).toContain('fix: upgrade the source to SQL Server 2016 SP1 (13.0.4001) or later');
  h.source.state.productVersion = '13.0.1601.5';
  expect(section((await h.run()).output, 'acme')).toContain('BLOCKING  version: 13.0.1601.5 (SQL Server 2016)');
  h.source.state.productVersion = '13.0.4001.0';
  expect(section((await h.run()).output, 'acme')).toContain('ready     version: 13.0.4001.0 (SQL Server 2016), Standard Edition (64-bit)');
  h.source.state.productVersion = '12.0.6024.0';
  expect(acme).toContain('ready     edition: Standard Edition (64-bit): compressed backups');
  expect(acme).toContain('ready     collation: SQL_Latin1_General_CP1_CI_AS');
  h.source.state.edition = 'Express Edition (64-bit)';
  h.source.state.databases.acme.collation = 'Latin1_General_100_CI_AS';
  const express = section((await h.run()).output, 'acme');
  expect(express).toContain('WARNING   edition: Express Edition (64-bit): BACKUP … WITH COMPRESSION is not available');
  expect(express).toContain('WARNING   collation: the database uses Latin1_General_100_CI_AS; the fleet file sets SQL_Latin1_General_CP1_CI_AS');
  const findings = inventory.assessInventory(
    { database: 'x', server: { version: '16.0.1000.6', level: 16, edition: 'Enterprise Edition', engineEdition: 3 }, db: { recoveryModel: 'FULL', compatibilityLevel: 160, encrypted: false, collation: 'c', state: 'ONLINE', sizeBytes: 1 }, users: [], agentJobs: [], crossDatabase: [] },
    { kind: 'sql-server', level: 15 },
  );
  expect(findings.find((f) => f.item === 'version')).toMatchObject({ verdict: 'blocking', fix: expect.stringContaining('same or a newer version') });
});

test('--json gives each tenant its findings and each table\'s row-hash statement, hashed as the older server (2014) on both sides', async () => {
  const { run } = harness();
  const { output } = await run(true);
  const doc = JSON.parse(output) as { readiness: { tenant: string; rowHashLevel: number; findings: inventory.Finding[]; rowHashes: { table: string; sql: string; types: Record<string, string> }[] }[] };
  const acme = doc.readiness.find((r) => r.tenant === 'acme')!;
  expect(acme.rowHashLevel).toBe(12);
  expect(acme.rowHashes.map((r) => r.table)).toEqual(['audit_log', 'campaigns']);
  const campaigns = acme.rowHashes.find((r) => r.table === 'campaigns')!;
  // 2014: the nvarchar(max) column is hashed in 8000-byte pieces; money keeps four decimals.
  expect(campaigns.sql).toContain('CROSS APPLY (SELECT CAST(src.[notes] AS varbinary(max)) AS [v2]) AS airlift_long');
  expect(campaigns.sql).toContain('CONVERT(varchar(30), src.[budget], 2)');
  expect(campaigns.types).toEqual({ page: 'int', lo0: 'int', hi0: 'int' });
  // No primary key: every orderable column (not the xml one) and the row hash order the rows.
  expect(acme.rowHashes.find((r) => r.table === 'audit_log')!.sql).toContain('GROUP BY r.[k0], r.[row_hash]');
  expect(acme.findings.find((f) => f.item === 'recovery model')).toMatchObject({ verdict: 'blocking' });
  expect(output).not.toContain(ENV.AIRLIFT_DC1_PASSWORD);
});

test('the test double refuses a statement it was not written for, so drift from the snapshots cannot pass silently', async () => {
  const fake = new FakeSqlServer(sourceState()).connect();
  await expect(fake.run({ sql: 'SELECT 1;', params: {} })).rejects.toThrow(/statement not understood/);
  await expect(fake.run({ ...inventory.databaseInventoryQuery('acme'), types: {} })).rejects.toThrow(/statement not understood/);
  await fake.close();
  await expect(fake.run(inventory.serverInventoryQuery)).rejects.toThrow(/connection closed/);
});
