// The T-SQL airlift sends to SQL Server: hostile identifiers are refused or quoted, values are
// parameters, and each statement is pinned by a snapshot that a reviewer reads.
import * as tsql from '../../engines/mssql-sql';
import { quoteBracketed } from '../../engines/identifiers';

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
  const { sql } = tsql.rowHashQuery(hostile, { lower: true, upper: true });
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
  const { sql } = tsql.rowHashQuery({ ...hostile, schema: 'dbo', name: 't' }, { lower: true, upper: true });
  expect(sql).toContain('WHERE (([id] > @lo0) OR ([id] = @lo0 AND [a]]b] > @lo1)) AND (([id] < @hi0) OR ([id] = @hi0 AND [a]]b] <= @hi1))');
  expect(tsql.rowHashQuery({ ...hostile, schema: 'dbo', name: 't' }, { lower: false, upper: false }).sql).not.toContain('WHERE');
});

test('the credential statement carries the SAS only as a parameter, and plan redacts it', () => {
  const s = tsql.createCredentialStatement('https://acct.blob.core.windows.net/airlift');
  expect(s.secretParams).toEqual(['sas']);
  const shown = tsql.renderStatement(s, { sas: 'sv=2024&sig=Zx9TopSecretSignature' });
  expect(shown).toContain('--   @sas = [redacted]');
  expect(shown).not.toContain('Zx9TopSecretSignature');
});

test.each([
  ['backup', tsql.backupStatement('acme_db', ['D:\\airlift\\acme_db-m1.bak'], { compression: true })],
  ['backup progress', tsql.progressQuery('acme_db')],
  ['database exists', tsql.databaseExistsQuery('acme_db')],
  ['list tables', tsql.listTablesQuery],
  ['row hashes of a range', tsql.rowHashQuery(hostile, { lower: true, upper: false })],
  ['tracking head', tsql.headKeyQuery({ schema: 'dbo', name: 'tracking_events', columns: [{ name: 'seq', type: 'bigint' }], key: ['seq'] })],
  ['outbox schema', tsql.outboxSchema],
  ['read outbox', tsql.readOutboxQuery],
  ['apply event', tsql.applyEventStatement({
    schema: 'dbo', name: 'tracking_events', key: ['seq'],
    columns: [{ name: 'seq', type: 'bigint', identity: true }, { name: 'event_id', type: 'nvarchar' }, { name: 'ad_id', type: 'int' }, { name: 'kind', type: 'nvarchar' }],
  })],
  ['advance cursor', tsql.advanceCursorStatement],
  ['read gate', tsql.readGateQuery],
  ['set gate', tsql.setGateStatement],
  ['credential', tsql.createCredentialStatement('https://acct.blob.core.windows.net/airlift')],
  ['file list', tsql.fileListStatement()],
  ['restore from URL', tsql.restoreFromUrlStatement('acme_db', [{ logicalName: 'acme', type: 'D' }, { logicalName: 'acme_log', type: 'L' }])],
  ['mark created', tsql.markCreatedStatement('acme_db')],
  ['created by', tsql.createdByQuery('acme_db')],
  ['drop', tsql.dropDatabaseStatement('acme_db')],
])('%s statement', (_name, statement) => {
  expect(tsql.renderStatement(statement)).toMatchSnapshot();
});
