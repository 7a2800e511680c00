// The SQL Server engine's key counters (issue 20, defect 11): what it sends (the exact T-SQL and the
// declared parameter types), and what that does, against the SQL Server stand-in
// (tests/helpers/fake-sql-server.ts) that keeps each IDENTITY's current value and each SEQUENCE's
// position and changes them as the documentation says the statements do:
//  - "DBCC CHECKIDENT (Transact-SQL)", learn.microsoft.com/sql/t-sql/database-console-commands/dbcc-checkident-transact-sql:
//    RESEED sets the current value, lower ones too; on a table that never issued a value (or was
//    emptied by TRUNCATE TABLE) the next row gets the reseed value itself, otherwise reseed + increment.
//  - "ALTER SEQUENCE (Transact-SQL)", learn.microsoft.com/sql/t-sql/statements/alter-sequence-transact-sql:
//    RESTART WITH is the next value the sequence returns.
//  - "IDENT_CURRENT (Transact-SQL)" and "sys.sequences (Transact-SQL)": where the current positions are read.
// No SQL Server runs here: the statements' effect on a real server is read, not run.
import { FakeSqlServer, fakeDatabase, type FakeServerState } from '../helpers/fake-sql-server';
import { FakeBackedMssqlEngine } from '../helpers/fake-mssql-engine';
import * as counters from '../../engines/mssql-counters-sql';
import type { CatalogColumnRow } from '../../engines/mssql-sql';

const column = (table: string, name: string, type: string, more: Partial<CatalogColumnRow> = {}): CatalogColumnRow => ({
  schema_name: 'dbo', table_name: table, column_name: name, type_name: type, max_length: 8, precision: 19, scale: 0,
  is_nullable: false, is_identity: false, is_assembly_type: false, key_ordinal: null, key_is_primary: null, ...more,
});
const tables = [
  column('orders', 'id', 'bigint', { is_identity: true, key_ordinal: 1, key_is_primary: true }),
  column('orders', 'total', 'decimal'),
  column('invoices', 'number', 'bigint', { key_ordinal: 1, key_is_primary: true }),
  column('audit', 'id', 'int', { is_identity: true, key_ordinal: 1, key_is_primary: true }),
];

function server(side: { orders: bigint; ordersUsed?: boolean; audit?: bigint; invoiceSeq: bigint }): FakeServerState {
  return {
    productVersion: '16.0.4135.4', engineEdition: 3, edition: 'Enterprise Edition', logins: [], jobs: [], msdbReadable: true, canCreateDatabase: true, canAlterCredential: true,
    databases: {
      acme: fakeDatabase({
        tables,
        identities: [
          { schema: 'dbo', table: 'orders', current: side.orders, increment: 1n, used: side.ordersUsed ?? true },
          { schema: 'dbo', table: 'audit', current: side.audit ?? 1n, increment: 1n, used: side.audit !== undefined },
        ],
        sequences: [{ schema: 'billing', name: 'invoice_numbers', current: side.invoiceSeq, increment: 10n }],
      }),
    },
  };
}

const endpoint = { server: 'sql01', port: 1433, encrypt: false, trustServerCertificate: true, compression: false };

describe('the T-SQL it sends', () => {
  test('reads IDENT_CURRENT of ascending identities that issued a value, and current_value of ascending sequences, as text', () => {
    expect(counters.keyCountersQuery.sql).toContain("CAST(CAST(IDENT_CURRENT(QUOTENAME(s.name) + N'.' + QUOTENAME(t.name)) AS decimal(38, 0)) AS nvarchar(40)) AS current_value");
    expect(counters.keyCountersQuery.sql).toContain('ic.last_value IS NOT NULL AND CAST(ic.increment_value AS decimal(38, 0)) > 0');
    expect(counters.keyCountersQuery.sql).toContain('FROM sys.sequences AS sq');
  });
  test('raises by DBCC CHECKIDENT … RESEED and ALTER SEQUENCE … RESTART WITH, names by QUOTENAME, values as declared bigint, never lower', () => {
    expect(counters.raiseIdentityStatement.sql).toContain('DBCC CHECKIDENT (@table, RESEED, @reseed) WITH NO_INFOMSGS;');
    expect(counters.raiseIdentityStatement.sql).toContain('((@used = 1 AND @current < @value) OR (@used = 0 AND @current <= @value))');
    expect(counters.raiseSequenceStatement.sql).toContain("N'ALTER SEQUENCE ' + @sequence + N' RESTART WITH ' + CAST(@value + @increment AS nvarchar(40))");
    expect(counters.raiseSequenceStatement.sql).toContain('@current < @value');
    for (const s of [counters.raiseIdentityStatement, counters.raiseSequenceStatement]) {
      expect(s.types).toEqual({ schema: 'nvarchar(128)', name: 'nvarchar(128)', value: 'bigint' });
      expect(s.sql).toContain("QUOTENAME(@schema) + N'.' + QUOTENAME(@name)");
    }
  });
  test('a sequence key holds its schema and name, brackets doubled, and reads back', () => {
    const key = counters.sequenceKey('bill]ing', 'numbers.v2');
    expect(key).toBe('sequence:[bill]]ing].[numbers.v2]');
    expect(counters.parseSequenceKey(key)).toEqual({ schema: 'bill]ing', name: 'numbers.v2' });
    expect(counters.parseSequenceKey('orders')).toBeUndefined();
  });
});

describe('carried under the fence, the new primary never issues a key the old one issued', () => {
  test('IDENTITY: rows 101-120 inserted on the source and deleted before they were copied; the target goes on at 121, not 101', async () => {
    const source = new FakeSqlServer(server({ orders: 120n, invoiceSeq: 500n }));
    const target = new FakeSqlServer(server({ orders: 100n, invoiceSeq: 450n }));
    const [from, to] = [new FakeBackedMssqlEngine(source, endpoint), new FakeBackedMssqlEngine(target, endpoint)];
    const read = await from.keyCounters('acme');
    expect(read).toEqual({ orders: 120, 'sequence:[billing].[invoice_numbers]': 500 });
    await to.raiseKeyCounters('acme', read);
    expect(target.insertIdentity('acme', 'dbo', 'orders')).toBe(121n);
    // SEQUENCE: the target's next number follows the source's last (500), by its own increment.
    expect(target.nextValueFor('acme', 'billing', 'invoice_numbers')).toBe(510n);
    // Exactly one statement per counter, each with its declared types.
    const raises = target.sent.filter((s) => s.sql === counters.raiseIdentityStatement.sql || s.sql === counters.raiseSequenceStatement.sql);
    expect(raises.map((s) => s.values)).toEqual([
      { schema: 'dbo', name: 'orders', value: 120 },
      { schema: 'billing', name: 'invoice_numbers', value: 500 },
    ]);
  });

  test('a counter already ahead is never lowered (DBCC CHECKIDENT would set it lower)', async () => {
    const target = new FakeSqlServer(server({ orders: 300n, invoiceSeq: 900n }));
    await new FakeBackedMssqlEngine(target, endpoint).raiseKeyCounters('acme', { orders: 120, 'sequence:[billing].[invoice_numbers]': 500 });
    expect(target.insertIdentity('acme', 'dbo', 'orders')).toBe(301n);
    expect(target.nextValueFor('acme', 'billing', 'invoice_numbers')).toBe(910n);
  });

  test('a target table that never issued a value (emptied by TRUNCATE TABLE) is reseeded one past, since its next row takes the reseed value itself', async () => {
    const target = new FakeSqlServer(server({ orders: 1n, ordersUsed: false, invoiceSeq: 0n }));
    await new FakeBackedMssqlEngine(target, endpoint).raiseKeyCounters('acme', { orders: 120 });
    expect(target.insertIdentity('acme', 'dbo', 'orders')).toBe(121n);
  });

  test('both ways: after a switch back the source goes on past what the target issued in the rollback window', async () => {
    const onTarget = new FakeSqlServer(server({ orders: 180n, audit: 40n, invoiceSeq: 700n }));
    const onSource = new FakeSqlServer(server({ orders: 120n, audit: 12n, invoiceSeq: 500n }));
    const read = await new FakeBackedMssqlEngine(onTarget, endpoint).keyCounters('acme');
    await new FakeBackedMssqlEngine(onSource, endpoint).raiseKeyCounters('acme', read);
    expect([onSource.insertIdentity('acme', 'dbo', 'orders'), onSource.insertIdentity('acme', 'dbo', 'audit'), onSource.nextValueFor('acme', 'billing', 'invoice_numbers')]).toEqual([181n, 41n, 710n]);
  });

  test('a table or sequence the other side lacks is skipped; a table without IDENTITY sends nothing', async () => {
    const target = new FakeSqlServer(server({ orders: 100n, invoiceSeq: 450n }));
    await new FakeBackedMssqlEngine(target, endpoint).raiseKeyCounters('acme', { invoices: 77, gone_table: 5, 'sequence:[billing].[gone]': 9 });
    const raises = target.sent.filter((s) => s.sql === counters.raiseIdentityStatement.sql || s.sql === counters.raiseSequenceStatement.sql);
    expect(raises.map((s) => s.values)).toEqual([{ schema: 'billing', name: 'gone', value: 9 }]);
    expect(target.state.databases.acme.sequences![0].current).toBe(450n);
  });
});
