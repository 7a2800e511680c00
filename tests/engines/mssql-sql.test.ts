// The T-SQL airlift sends to SQL Server: hostile identifiers are refused or quoted, values are
// parameters, and each statement is pinned by a snapshot that a reviewer reads.
import * as tsql from '../../engines/mssql-sql';
import { quoteBracketed } from '../../engines/identifiers';
import * as rowHash from '../../engines/mssql-row-hash';

const MODERN = rowHash.hashDialect(16);

const hostile: tsql.MssqlTable = {
  schema: 'sales]; DROP TABLE x --',
  name: "x'; DROP DATABASE y --",
  columns: [
    { name: 'id', type: 'int' },
    { name: 'a]b', type: 'nvarchar' },
    { name: 'Café_名前', type: 'varbinary' },
    { name: 'at', type: 'datetime2' },
    { name: 'ratio', type: 'float' },
  ],
  key: ['id', 'a]b'],
};

test('database names that are not plain identifiers are refused before any T-SQL is built', () => {
  for (const name of ['a]b', "x'; DROP DATABASE y --", 'Café', '', 'a b'])
    expect(() => tsql.backupStatement(name, ['D:\\b\\x.bak'], { compression: true })).toThrow(/is not a valid SQL identifier/);
  expect(() => tsql.restoreFromUrlStatement('a]b', [])).toThrow(/is not a valid SQL identifier/);
  expect(() => tsql.dropDatabaseStatement("x'; DROP DATABASE y --")).toThrow(/is not a valid SQL identifier/);
});

test('identifiers from a database catalog are bracket-quoted with ] doubled, never left raw', () => {
  expect(quoteBracketed('a]b')).toBe('[a]]b]');
  expect(quoteBracketed("x'; DROP DATABASE y --")).toBe("[x'; DROP DATABASE y --]");
  expect(quoteBracketed('Café_名前')).toBe('[Café_名前]');
  const { sql } = rowHash.rowHashQuery(hostile, { lower: true, upper: true }, MODERN);
  expect(sql).toContain("FROM [sales]]; DROP TABLE x --].[x'; DROP DATABASE y --]");
  expect(sql).toContain('[a]]b]');
  // Outside brackets nothing of the hostile names survives.
  expect(sql.replace(/\[(?:[^\]]|\]\])*\]/g, '[]')).not.toMatch(/DROP|Café|a\]b/);
});

test('BACKUP is COPY_ONLY with CHECKSUM to parameterised stripe files', () => {
  const s = tsql.backupStatement('acme_db', ['D:\\airlift\\acme-1.bak', 'D:\\airlift\\acme-2.bak'], { compression: true });
  expect(s.sql).toBe('BACKUP DATABASE [acme_db] TO DISK = @disk0, DISK = @disk1 WITH COPY_ONLY, CHECKSUM, FORMAT, INIT, STATS = 5, COMPRESSION;');
  expect(s.params).toEqual({ disk0: 'D:\\airlift\\acme-1.bak', disk1: 'D:\\airlift\\acme-2.bak' });
  expect(tsql.backupStatement('acme_db', ["D:\\it's\\x.bak"], { compression: false }).sql).not.toContain("it's");
});

test('the key range of a composite key is spelled out lexicographically', () => {
  const { sql } = rowHash.rowHashQuery({ ...hostile, schema: 'dbo', name: 't' }, { lower: true, upper: true }, MODERN);
  expect(sql).toContain('WHERE ((src.[id] > @lo0) OR (src.[id] = @lo0 AND src.[a]]b] > @lo1))\n  AND ((src.[id] < @hi0) OR (src.[id] = @hi0 AND src.[a]]b] <= @hi1))');
  expect(rowHash.rowHashQuery({ ...hostile, schema: 'dbo', name: 't' }, { lower: false, upper: false }, MODERN).sql).not.toContain('WHERE');
});

describe('BACKUP and RESTORE details (issue 8 item 12)', () => {
  test('progress is read from our own request only: found by the statement text it starts with, not any restore on the instance', () => {
    // sys.dm_exec_requests: database_id is the request's current database (master for RESTORE), so
    // "any RESTORE DATABASE" would report another tenant's restore as ours.
    const restoring = tsql.restoringName('3f2a9c0d1e4b5a67');
    const restore = tsql.progressQuery(restoring, 'RESTORE');
    expect(restore.sql).not.toMatch(/OR r\.command|DB_NAME\(r\.database_id\)/);
    expect(restore.sql).toContain('CROSS APPLY sys.dm_exec_sql_text(r.sql_handle) AS t');
    expect(tsql.restoreFromUrlStatement(restoring, []).sql.startsWith(String(restore.params.statement))).toBe(true);
    const backup = tsql.progressQuery('acme_db', 'BACKUP');
    expect(tsql.backupStatement('acme_db', ['D:\\b\\x.bak'], { compression: false }).sql.startsWith(String(backup.params.statement))).toBe(true);
    // Another database whose name starts the same is not matched: the bracket closes the name.
    expect(backup.params.statement).toBe('BACKUP DATABASE [acme_db] ');
    expect(backup.types).toEqual({ command: 'nvarchar(32)', statement: 'nvarchar(200)' });
  });

  test('no COMPRESSION on Express or Web, nor on SQL Server 2008 outside Enterprise', () => {
    // Backup compression (SQL Server): not available in Express and Web; SQL Server 2008 supports it
    // in Enterprise only, 2008 R2 and later in Standard too. SERVERPROPERTY EngineEdition is 2 for
    // Standard, Web and Business Intelligence alike, so the Edition text must decide.
    const { sql } = tsql.compressionSupportedQuery;
    expect(sql).toContain("WHEN @edition LIKE N'Express%' OR @edition LIKE N'Web%' THEN 0");
    expect(sql).toContain("WHEN SERVERPROPERTY('EngineEdition') = 2 AND @version NOT LIKE N'10.0.%' THEN 1");
    expect(sql.indexOf('Web%')).toBeLessThan(sql.indexOf("= 3 THEN 1"));
  });
});

test('the credential statement carries the SAS only as a parameter, and plan redacts it', () => {
  const s = tsql.createCredentialStatement('https://acct.blob.core.windows.net/airlift');
  expect(s.secretParams).toEqual(['sas']);
  const shown = tsql.renderStatement(s, { sas: 'sv=2024&sig=Zx9TopSecretSignature' });
  expect(shown).toContain('--   @sas = [redacted]');
  expect(shown).not.toContain('Zx9TopSecretSignature');
});

const tracking: tsql.MssqlTable = {
  schema: 'dbo', name: 'tracking_events', key: ['seq'],
  columns: [
    { name: 'seq', type: 'bigint', identity: true }, { name: 'event_id', type: 'nvarchar' }, { name: 'ad_id', type: 'int' },
    { name: 'kind', type: 'nvarchar' }, { name: 'occurred_at', type: 'nvarchar' }, { name: 'user_agent', type: 'nvarchar' }, { name: 'payload', type: 'nvarchar' },
  ],
};

/** Where each of `parts` first appears in `sql`, failing the test if one is missing. */
function positions(sql: string, parts: string[]): number[] {
  return parts.map((part) => {
    const at = sql.indexOf(part);
    if (at < 0) throw new Error(`expected the statement to contain ${JSON.stringify(part)}:\n${sql}`);
    return at;
  });
}

describe('the tracking write (issue 9: change capture records it; the outbox is gone)', () => {
  test('a failed write rolls its transaction back: XACT_ABORT comes first', () => {
    // SET XACT_ABORT: when ON, a run-time error (THROW honours it) terminates and rolls back the
    // whole transaction; when OFF, THROW ends the batch and leaves the transaction open, holding locks.
    const { sql } = tsql.writeEventStatement(tracking);
    expect(sql.split('\n')[0]).toBe('SET XACT_ABORT ON;');
    expect(tsql.setGateStatement.sql.split('\n')[0]).toBe('SET XACT_ABORT ON;');
  });

  test('the event is the only row it writes; the IDENTITY column is the server\'s to assign', () => {
    const { sql, params } = tsql.writeEventStatement(tracking);
    expect(sql).not.toMatch(/airlift_outbox|sp_getapplock|FOR JSON/);
    expect(Object.keys(params)).toEqual(['v_event_id', 'v_ad_id', 'v_kind', 'v_occurred_at', 'v_user_agent', 'v_payload']);
    expect(sql).not.toMatch(/\[seq\]/);
  });
});

describe('the write gate holds for every writer (fences in the tenant database)', () => {
  test('the gate is read with an update lock held to commit, before the event is written, and a closed gate THROWs 51000', () => {
    // Under READ_COMMITTED_SNAPSHOT a plain SELECT reads the version committed when the statement
    // began and takes no lock: a fence committed right after would not be seen, and setWriteGate
    // would not wait for this writer. Table hints: UPDLOCK "update locks are to be taken and held
    // until the transaction completes"; HOLDLOCK (SERIALIZABLE) also locks the key range when the
    // gate row does not exist yet. READ COMMITTED is set first, since in a SNAPSHOT transaction reads
    // come from the transaction's snapshot.
    const { sql } = tsql.writeEventStatement(tracking);
    const [isolation, gate, check, event] = positions(sql, [
      'SET TRANSACTION ISOLATION LEVEL READ COMMITTED;',
      'FROM dbo.airlift_gate WITH (UPDLOCK, HOLDLOCK) WHERE id = 1;',
      "IF @airlift_state IS NOT NULL AND @airlift_state <> N'open'",
      'INSERT INTO [dbo].[tracking_events]',
    ]);
    expect(isolation).toBeLessThan(gate);
    expect(gate).toBeLessThan(check);
    expect(check).toBeLessThan(event);
    // THROW: error_number must be 50000 or more; the writer recognises this one (FencedWriteError).
    expect(sql).toContain(`THROW ${tsql.FENCED_ERROR}, @airlift_message, 1;`);
    expect(tsql.FENCED_ERROR).toBeGreaterThanOrEqual(50000);
  });

  test('setting the gate waits for every writer that read the old one: it needs the update lock the writers hold', () => {
    // Lock compatibility: an update (U) lock is incompatible with another U lock, so this read waits
    // until every writer holding the gate row's U lock (UPDLOCK, to commit) has committed.
    const { sql } = tsql.setGateStatement;
    const [begin, read, update, commit] = positions(sql, [
      'BEGIN TRANSACTION;',
      'FROM dbo.airlift_gate WITH (UPDLOCK, HOLDLOCK) WHERE id = 1;',
      'UPDATE dbo.airlift_gate SET state = @state',
      'COMMIT TRANSACTION;',
    ]);
    expect(begin).toBeLessThan(read);
    expect(read).toBeLessThan(update);
    expect(update).toBeLessThan(commit);
  });

  test('cursors are keyed by stream in a column wide enough for <migrationId>:<origin>', () => {
    expect(tsql.gateSchema.sql).toContain('CREATE TABLE dbo.airlift_cursors (stream nvarchar(128) NOT NULL PRIMARY KEY, cursor_seq bigint NOT NULL);');
    expect(tsql.advanceCursorStatement.sql).toContain('WHERE stream = @stream;');
    expect(tsql.appliedCursorQuery.sql).toContain('SELECT cursor_seq FROM dbo.airlift_cursors WHERE stream = @stream;');
    // The cursor is a bigint seq: declared so, not guessed from a JavaScript number (which the driver sends as int).
    expect(tsql.advanceCursorStatement.types).toEqual({ stream: 'nvarchar(128)', cursor: 'bigint' });
  });

  test('reading the gate or a cursor never creates airlift tables (capture removed: the schema is as it was)', () => {
    expect(tsql.readGateQuery.sql).toMatch(/^IF OBJECT_ID\(N'dbo\.airlift_gate', N'U'\) IS NOT NULL SELECT/);
    expect(tsql.appliedCursorQuery.sql).toMatch(/^IF OBJECT_ID\(N'dbo\.airlift_cursors', N'U'\) IS NOT NULL SELECT/);
  });
});

describe('a restored database is owned by its migration from the moment it exists (issue 8 item 4)', () => {
  test('RESTORE creates it under a name that records the migration; it is renamed only once marked', () => {
    expect(tsql.restoringName('3f2a9c0d1e4b5a67')).toBe('airlift_restoring_3f2a9c0d1e4b5a67');
    expect(tsql.restoreFromUrlStatement(tsql.restoringName('3f2a9c0d1e4b5a67'), []).sql).toMatch(/^RESTORE DATABASE \[airlift_restoring_3f2a9c0d1e4b5a67\] FROM URL/);
    expect(tsql.renameDatabaseStatement('airlift_restoring_3f2a9c0d1e4b5a67', 'acme').sql).toBe('ALTER DATABASE [airlift_restoring_3f2a9c0d1e4b5a67] MODIFY NAME = [acme];');
    expect(() => tsql.restoringName("x'; DROP DATABASE y --")).toThrow(/migration id/);
  });

  test('a database left RESTORING by an interrupted RESTORE can be dropped (no ALTER DATABASE on it)', () => {
    const s = tsql.dropDatabaseStatement('airlift_restoring_3f2a9c0d1e4b5a67');
    expect(s.sql).toContain("IF CAST(DATABASEPROPERTYEX(@database, 'Status') AS nvarchar(60)) = N'ONLINE'\n  ALTER DATABASE");
    expect(s.params).toEqual({ database: 'airlift_restoring_3f2a9c0d1e4b5a67' });
  });
});

test.each([
  ['backup', tsql.backupStatement('acme_db', ['D:\\airlift\\acme_db-m1.bak'], { compression: true })],
  ['backup progress', tsql.progressQuery('acme_db', 'BACKUP')],
  ['restore progress', tsql.progressQuery(tsql.restoringName('3f2a9c0d1e4b5a67'), 'RESTORE')],
  ['compression supported', tsql.compressionSupportedQuery],
  ['database exists', tsql.databaseExistsQuery('acme_db')],
  ['list tables', tsql.listTablesQuery()],
  ['list tables of a database, from master', tsql.listTablesQuery('acme_db')],
  ['row hashes of a range', rowHash.rowHashQuery(hostile, { lower: true, upper: false }, MODERN)],
  ['gate schema', tsql.gateSchema],
  ['lock gate', tsql.lockGateQuery],
  ['applied cursor', tsql.appliedCursorQuery],
  ['advance cursor', tsql.advanceCursorStatement],
  ['read gate', tsql.readGateQuery],
  ['set gate', tsql.setGateStatement],
  ['tracking write (gateway or application)', tsql.writeEventStatement(tracking)],
  ['database state', tsql.databaseStateQuery('acme_db')],
  ['rename restored', tsql.renameDatabaseStatement(tsql.restoringName('3f2a9c0d1e4b5a67'), 'acme_db')],
  ['credential', tsql.createCredentialStatement('https://acct.blob.core.windows.net/airlift')],
  ['file list', tsql.fileListStatement()],
  ['restore from URL', tsql.restoreFromUrlStatement('acme_db', [{ logicalName: 'acme', type: 'D' }, { logicalName: 'acme_log', type: 'L' }])],
  ['mark created', tsql.markCreatedStatement('acme_db')],
  ['created by', tsql.createdByQuery('acme_db')],
  ['drop', tsql.dropDatabaseStatement('acme_db')],
])('%s statement', (_name, statement) => {
  expect(tsql.renderStatement(statement)).toMatchSnapshot();
});
