// Change capture on SQL Server as the T-SQL airlift sends: hostile identifiers stay inside brackets,
// every value is a parameter with its declared type, and each statement encodes the documented rule
// it relies on (cited beside each test). No SQL Server runs here: the live behaviour is checked by the
// SQL Server section of tests/engines/contract.test.ts when AIRLIFT_MSSQL_URL is set.
import sql from 'mssql';
import * as rowHash from '../../engines/mssql-row-hash';
import * as capture from '../../engines/mssql-capture-sql';
import * as tsql from '../../engines/mssql-sql';
import { classifyMssqlError, driverType } from '../../engines/mssql';

const hostile: tsql.MssqlTable = {
  schema: 'sales]; DROP TABLE x --',
  name: "x'; DROP DATABASE y --",
  columns: [
    { name: 'id', type: 'int', identity: true },
    { name: 'a]b', type: 'nvarchar', maxLength: 200 },
    { name: 'Café_名前', type: 'varbinary', maxLength: -1 },
    { name: 'at', type: 'datetime2', scale: 3 },
    { name: 'price', type: 'decimal', precision: 18, scale: 4 },
    { name: 'flag', type: 'bit' },
    { name: 'stamp', type: 'timestamp' },
  ],
  key: ['id', 'a]b'],
};

const plain: tsql.MssqlTable = {
  schema: 'dbo',
  name: 'budgets',
  columns: [
    { name: 'campaign_id', type: 'int' },
    { name: 'day', type: 'date' },
    { name: 'spend', type: 'money' },
  ],
  key: ['campaign_id', 'day'],
};

/** The text with every bracketed identifier and every N'…' literal blanked out. */
const outsideQuotes = (text: string) => text.replace(/\[(?:[^\]]|\]\])*\]/g, '[]').replace(/N'(?:[^']|'')*'/g, "N''");

/** Where each of `parts` first appears in `sql`, failing the test if one is missing. */
function positions(text: string, parts: string[]): number[] {
  return parts.map((part) => {
    const at = text.indexOf(part);
    if (at < 0) throw new Error(`expected the statement to contain ${JSON.stringify(part)}:\n${text}`);
    return at;
  });
}

describe('identifiers from the catalog never leave their brackets', () => {
  const statements = [
    capture.captureTriggerStatement(hostile),
    capture.fenceTriggerStatement(hostile),
    capture.readRowsQuery(hostile, 2),
    capture.upsertRowsStatement(hostile, 2),
    capture.deleteRowsStatement(hostile, 2),
  ];

  test.each(statements.map((s, i) => [i, s] as const))('statement %i: nothing of the hostile names survives outside brackets and literals', (_i, s) => {
    expect(s.sql).toContain('[sales]]; DROP TABLE x --].');
    expect(outsideQuotes(s.sql)).not.toMatch(/DROP (TABLE|DATABASE)|Café|a\]b/);
  });

  test('the change log records the table by name as a Unicode literal with its quote doubled', () => {
    expect(capture.captureTriggerStatement(hostile).sql).toContain(`SELECT N'sales]; DROP TABLE x --.x''; DROP DATABASE y --', `);
  });

  test('trigger names are a hash of the table: valid whatever the table is called, and distinct per table', () => {
    const a = capture.triggerName(hostile, 'capture');
    expect(a).toMatch(/^airlift_capture_[0-9a-f]{16}$/);
    expect(capture.triggerName({ ...hostile, schema: 'dbo' }, 'capture')).not.toBe(a);
    expect(capture.triggerName(hostile, 'fence')).toMatch(/^airlift_fence_[0-9a-f]{16}$/);
    // CREATE TRIGGER: a DML trigger is created in the schema of its table.
    expect(capture.captureTriggerStatement(hostile).sql.split('\n')[0]).toBe(`CREATE OR ALTER TRIGGER [sales]]; DROP TABLE x --].[${a}] ON [sales]]; DROP TABLE x --].[x'; DROP DATABASE y --] AFTER INSERT, UPDATE, DELETE AS`);
  });
});

describe('the capture trigger records every changed key, whoever writes (issue 9)', () => {
  const { sql: trigger } = capture.captureTriggerStatement(plain);

  test('it is set-based over the inserted and deleted tables: one firing covers a multi-row statement', () => {
    // "Create DML triggers to handle multiple rows of data": the statement that fires a trigger may
    // affect many rows, and one firing sees them all; rowset-based logic, not cursors or variables.
    // "Use the inserted and deleted tables": inserted holds the new rows of an INSERT or UPDATE,
    // deleted the old rows of an UPDATE or DELETE.
    expect(trigger).toContain("SELECT N'budgets', i.[campaign_id], CONVERT(nvarchar(64), i.[day], 121) FROM inserted AS i");
    expect(trigger).not.toMatch(/CURSOR|FETCH|SELECT @\w+ = i\./i);
  });

  test('a key that an UPDATE changed is recorded twice, old and new, so the old row is deleted on the other side', () => {
    // deleted keeps the old key of an updated row; a key present in deleted but not in inserted is
    // gone (a DELETE, or the old key of an UPDATE that changed it).
    expect(trigger).toContain(
      "SELECT N'budgets', d.[campaign_id], CONVERT(nvarchar(64), d.[day], 121) FROM deleted AS d WHERE NOT EXISTS (SELECT 1 FROM inserted AS i WHERE i.[campaign_id] = d.[campaign_id] AND i.[day] = d.[day]);",
    );
  });

  test('in order: skip the applier, refuse a closed gate, take the change-log lock, then assign seqs', () => {
    const [skip, gate, refuse, lock, insert] = positions(trigger, [
      "IF SESSION_CONTEXT(N'airlift_applying') = CURRENT_TRANSACTION_ID() RETURN;",
      'FROM dbo.airlift_gate WITH (HOLDLOCK) WHERE id = 1;',
      `THROW ${capture.FENCED_ERROR}, @airlift_message, 1;`,
      "EXEC @airlift_lock = sys.sp_getapplock @Resource = N'airlift_changes', @LockMode = 'Shared', @LockOwner = 'Transaction'",
      'INSERT INTO dbo.airlift_changes',
    ]);
    expect(skip).toBeLessThan(gate);
    expect(gate).toBeLessThan(refuse);
    expect(refuse).toBeLessThan(lock);
    // IDENTITY (Property): values are taken at insert, not in commit order; the lock is held before
    // this transaction's first seq exists, so a reader's Exclusive request waits for it.
    expect(lock).toBeLessThan(insert);
    // sp_getapplock returns < 0 for timeout, cancel, deadlock victim or a bad call: never insert without the lock.
    expect(trigger).toContain(`IF @airlift_lock < 0 THROW ${capture.CHANGES_LOCK_ERROR},`);
  });

  test('the gate is read with a shared lock held to commit, under READ COMMITTED, so a fence waits for this writer', () => {
    // SET TRANSACTION ISOLATION LEVEL: set inside a trigger, it reverts when the trigger returns, so
    // the writer's own session is left as it was. HOLDLOCK keeps the shared lock to the end of the
    // transaction; setWriteGate's UPDATE needs an exclusive lock on the row and so waits for it.
    const [isolation, gate] = positions(trigger, ['SET TRANSACTION ISOLATION LEVEL READ COMMITTED;', 'FROM dbo.airlift_gate WITH (HOLDLOCK)']);
    expect(isolation).toBeLessThan(gate);
    // Shared, not UPDLOCK: writers on different tables do not wait for one another at the gate.
    expect(trigger).not.toMatch(/airlift_gate WITH \(UPDLOCK/);
    expect(trigger).toContain('SET XACT_ABORT ON;');
  });

  test('a retired source keeps only the refusal: no change log, no lock', () => {
    const { sql: fence } = capture.fenceTriggerStatement(plain);
    expect(fence).toContain(`THROW ${capture.FENCED_ERROR}, @airlift_message, 1;`);
    expect(fence).not.toMatch(/airlift_changes|sp_getapplock/);
    expect(fence).toContain("IF SESSION_CONTEXT(N'airlift_applying') = CURRENT_TRANSACTION_ID() RETURN;");
  });

  test('a fenced write is FencedWriteError, a refused apply ReplicationConflictError, a change-log lock timeout retried', () => {
    const error = (number: number) => Object.assign(new Error(`error ${number}`), { number });
    expect(classifyMssqlError(error(capture.FENCED_ERROR), 'w')).toMatchObject({ name: 'FencedWriteError', retryable: true });
    expect(classifyMssqlError(error(capture.CONFLICT_ERROR), 'w')).toMatchObject({ name: 'ReplicationConflictError', retryable: false });
    expect(classifyMssqlError(error(capture.CHANGES_LOCK_ERROR), 'w')).toMatchObject({ name: 'ConnectionError', retryable: true });
  });
});

describe('a reader reads only up to a safe point (seq order is commit order)', () => {
  test('the safe point is MAX(seq) while the change-log lock is held Exclusive, for a bounded wait', () => {
    // sp_getapplock: a lock owned by the Transaction is released when it commits or rolls back, and
    // Exclusive is incompatible with Shared: once granted, every capturing transaction that had a seq
    // has ended. The wait is short, so a long tenant transaction delays replication, not every writer.
    const { sql: safe } = capture.safePointStatement;
    const [lock, max, commit] = positions(safe, [
      `EXEC @lock = sys.sp_getapplock @Resource = N'airlift_changes', @LockMode = 'Exclusive', @LockOwner = 'Transaction', @LockTimeout = ${capture.SAFE_POINT_WAIT_MS};`,
      'IF @lock >= 0 SELECT @safe = ISNULL(MAX(seq), 0) FROM dbo.airlift_changes;',
      'COMMIT TRANSACTION;',
    ]);
    expect(lock).toBeLessThan(max);
    expect(max).toBeLessThan(commit);
    expect(capture.SAFE_POINT_WAIT_MS).toBeLessThanOrEqual(250);
  });

  test('changes are read after the cursor and never past the safe point, with declared types', () => {
    expect(capture.readChangesQuery.sql).toContain('WHERE seq > @after AND seq <= @upTo ORDER BY seq;');
    expect(capture.readChangesQuery.types).toEqual({ limit: 'int', after: 'bigint', upTo: 'bigint' });
  });

  test('the log holds keys in sql_variant columns, one log for every table, seq a bigint IDENTITY', () => {
    expect(capture.captureSchema.sql).toContain('CREATE TABLE dbo.airlift_changes (seq bigint IDENTITY(1, 1) NOT NULL PRIMARY KEY, tbl nvarchar(300) NOT NULL, k0 sql_variant NULL,');
    expect(capture.captureSchema.sql).toContain(`k${capture.MAX_KEY_COLUMNS - 1} sql_variant NULL);`);
  });
});

describe('values travel with their exact SQL types', () => {
  test('each column type has a declared type and an exact way back', () => {
    const types = Object.fromEntries(
      [
        { name: 'a', type: 'int' }, { name: 'b', type: 'bigint' }, { name: 'c', type: 'nvarchar', maxLength: 200 }, { name: 'd', type: 'varchar', maxLength: 30 },
        { name: 'e', type: 'decimal', precision: 18, scale: 4 }, { name: 'f', type: 'datetime2', scale: 3 }, { name: 'g', type: 'date' }, { name: 'h', type: 'money' },
        { name: 'i', type: 'varbinary', maxLength: -1 }, { name: 'j', type: 'bit' }, { name: 'k', type: 'uniqueidentifier' }, { name: 'l', type: 'hierarchyid' },
      ].map((c) => {
        const w = capture.wireOf(c);
        return [c.type, `${w.param} -> ${w.write('@p')}`];
      }),
    );
    expect(types).toEqual({
      int: 'int -> @p',
      bigint: 'bigint -> @p',
      nvarchar: 'nvarchar(100) -> CAST(@p AS nvarchar(100))',
      // Unicode on the wire; the column's own collation converts it on the way in.
      varchar: 'nvarchar(30) -> CAST(@p AS varchar(30))',
      // Text, not a JavaScript number: decimal(18, 4) does not fit a double exactly.
      decimal: 'nvarchar(64) -> CAST(@p AS decimal(18, 4))',
      // CAST and CONVERT, date and time styles: 121 keeps every fractional digit of the scale.
      datetime2: 'nvarchar(64) -> CONVERT(datetime2(3), @p, 121)',
      date: 'nvarchar(64) -> CONVERT(date, @p, 121)',
      money: 'nvarchar(64) -> CAST(@p AS money)',
      varbinary: 'varbinary(max) -> CAST(@p AS varbinary(max))',
      bit: 'tinyint -> CAST(@p AS bit)',
      uniqueidentifier: 'uniqueidentifier -> @p',
      hierarchyid: 'varbinary(max) -> CAST(@p AS hierarchyid)',
    });
    // money styles: 2 keeps four decimals; style 0 would round to two.
    expect(capture.wireOf({ name: 'm', type: 'money' }).read('[m]')).toBe('CONVERT(nvarchar(64), [m], 2)');
  });

  test('the key-matched read declares every key parameter and converts it to the column type', () => {
    const s = capture.readRowsQuery(plain, 2);
    expect(s.types).toEqual({ k0_0: 'int', k0_1: 'nvarchar(64)', k1_0: 'int', k1_1: 'nvarchar(64)' });
    expect(s.sql).toContain('FROM (VALUES (0, @k0_0, @k0_1), (1, @k1_0, @k1_1)) AS v (n, k0, k1) JOIN [dbo].[budgets] AS t ON t.[campaign_id] = v.k0 AND t.[day] = CONVERT(date, v.k1, 121)');
  });

  test('the upsert declares one parameter per column of each row, generated columns read but never written', () => {
    const s = capture.upsertRowsStatement(hostile, 1);
    expect(s.types).toEqual({ r0_0: 'int', r0_1: 'nvarchar(100)', r0_2: 'varbinary(max)', r0_3: 'nvarchar(64)', r0_4: 'nvarchar(64)', r0_5: 'tinyint', r0_6: 'varbinary(8)' });
    expect(s.sql).not.toMatch(/\[stamp\] =|, \[stamp\]\)/);
    // The IDENTITY column is inserted (IDENTITY_INSERT), never updated.
    expect(s.sql).not.toContain('t.[id] = CAST');
    expect(s.sql).toContain('UPDATE t SET t.[a]]b] = CAST(v.c1 AS nvarchar(100))');
  });

  test('declared types become driver types, so no value is sent with a type guessed from JavaScript', () => {
    const nvarchar = driverType('nvarchar(64)') as unknown as { type: unknown; length: number };
    expect(nvarchar.type).toBe(sql.NVarChar);
    expect(nvarchar.length).toBe(64);
    expect((driverType('varbinary(max)') as unknown as { length: number }).length).toBe(sql.MAX);
    expect((driverType('bigint') as unknown as { type: unknown }).type).toBe(sql.BigInt);
    expect(() => driverType('geography')).toThrow(/no driver type/);
  });

  test('statements stay under the 2,100-parameter limit and 1,000 rows per VALUES list', () => {
    const wide: tsql.MssqlTable = { schema: 'dbo', name: 'w', key: ['c0'], columns: Array.from({ length: 300 }, (_, i) => ({ name: `c${i}`, type: 'int' })) };
    for (const table of [wide, plain, hostile]) {
      const rows = capture.rowsPerStatement(table, 'row');
      expect(Object.keys(capture.upsertRowsStatement(table, rows).types!).length).toBeLessThanOrEqual(2000);
      expect(rows).toBeLessThanOrEqual(1000);
      expect(Object.keys(capture.readRowsQuery(table, capture.rowsPerStatement(table, 'key')).types!).length).toBeLessThanOrEqual(2000);
    }
  });
});

test('the verifier names a key as the change log records it, so a row changing under verification is recognised', () => {
  // A date key travels as text in the log (style 121) and in the verifier's row hashes (CAST, whose
  // default for date is also yyyy-mm-dd: "CAST and CONVERT", date and time styles); ordering and
  // range bounds stay on the column itself.
  const { sql: hashes } = rowHash.rowHashQuery(plain, { lower: true, upper: false }, rowHash.hashDialect(3));
  expect(hashes).toContain('CAST(src.[day] AS varchar(64)) AS [k1]');
  expect(hashes).toContain('ORDER BY src.[campaign_id], src.[day]');
  expect(capture.captureTriggerStatement(plain).sql).toContain('CONVERT(nvarchar(64), i.[day], 121)');
});

describe('the applier: one transaction, neither captured nor refused, never into a side that takes writes', () => {
  test('it refuses an open (or gateless) database and reads the gate and its cursor under update locks', () => {
    const { sql: begin } = capture.applyBeginStatement;
    const [gate, refuse, foreign, cursor, mark] = positions(begin, [
      'SELECT @state = state, @gate_migration = migration_id FROM dbo.airlift_gate WITH (UPDLOCK, HOLDLOCK) WHERE id = 1;',
      "IF @state IS NULL OR @state = N'open'",
      // A zombie applier of a rolled-back migration: its stream's migration is not the gate's.
      'IF @gate_migration IS NULL OR @gate_migration <> @migration',
      'SELECT @cursor = cursor_seq FROM dbo.airlift_cursors WITH (UPDLOCK, HOLDLOCK) WHERE stream = @stream;',
      "EXEC sys.sp_set_session_context @key = N'airlift_applying', @value = @tx, @read_only = 0;",
    ]);
    expect(gate).toBeLessThan(refuse);
    expect(refuse).toBeLessThan(foreign);
    expect(foreign).toBeLessThan(cursor);
    expect(cursor).toBeLessThan(mark);
    expect(begin).toContain(`THROW ${capture.CONFLICT_ERROR}, @message, 1;`);
    // A batch the cursor has passed is skipped whole, and then nothing is marked.
    expect(begin).toContain('IF ISNULL(@cursor, 0) >= @upTo\n  SELECT CAST(1 AS bit) AS skip;');
  });

  test('the mark names this transaction only, and is cleared at the end', () => {
    // sp_set_session_context: @read_only = 0 lets it be changed again on this connection (a pooled one
    // is reused); SESSION_CONTEXT returns it; CURRENT_TRANSACTION_ID: the current transaction's id. A
    // mark left by an aborted batch names a transaction that is over, so no later write skips capture.
    expect(capture.applyBeginStatement.sql).toContain('@tx bigint = CURRENT_TRANSACTION_ID()');
    expect(capture.applyEndStatement.sql).toBe("EXEC sys.sp_set_session_context @key = N'airlift_applying', @value = NULL, @read_only = 0;");
    expect(capture.applyBeginStatement.types).toEqual({ stream: 'nvarchar(128)', upTo: 'bigint', migration: 'nvarchar(64)' });
  });

  test('IDENTITY_INSERT is ON only around the insert, and OFF again even when the insert fails', () => {
    // SET IDENTITY_INSERT: "At any time, only one table in a session can have the IDENTITY_INSERT
    // property set to ON": one left ON would break the next table's apply on this pooled connection.
    const { sql: upsert } = capture.upsertRowsStatement(hostile, 1);
    const t = "[sales]]; DROP TABLE x --].[x'; DROP DATABASE y --]";
    expect(upsert).toContain(`SET IDENTITY_INSERT ${t} ON;\nBEGIN TRY\n  INSERT INTO ${t}`);
    expect(upsert).toContain(`BEGIN CATCH\n  SET IDENTITY_INSERT ${t} OFF;\n  THROW;\nEND CATCH;\nSET IDENTITY_INSERT ${t} OFF;`);
    expect(capture.upsertRowsStatement(plain, 1).sql).not.toContain('IDENTITY_INSERT');
  });

  test('update first, then insert only the keys that are not there; a null image is a delete by key', () => {
    const { sql: upsert } = capture.upsertRowsStatement(plain, 2);
    const [update, insert] = positions(upsert, ['UPDATE t SET', 'INSERT INTO [dbo].[budgets]']);
    expect(update).toBeLessThan(insert);
    expect(upsert).toContain('WHERE NOT EXISTS (SELECT 1 FROM [dbo].[budgets] AS t WHERE t.[campaign_id] = v.c0 AND t.[day] = CONVERT(date, v.c1, 121))');
    expect(capture.deleteRowsStatement(plain, 1).sql).toContain('DELETE t FROM [dbo].[budgets] AS t JOIN (VALUES (@k0_0, @k0_1)) AS v (k0, k1) ON t.[campaign_id] = v.k0 AND t.[day] = CONVERT(date, v.k1, 121);');
  });
});

describe("the tenant's own triggers and foreign keys are held aside while a side is not open", () => {
  test('exactly the enabled ones are recorded, then disabled; airlift\'s own triggers are not held', () => {
    // DISABLE TRIGGER: disabling does not drop the trigger; it stops firing until ENABLE TRIGGER.
    const { sql: hold } = capture.holdStatement;
    const [record, disable] = positions(hold, ['INSERT INTO dbo.airlift_held', "N'DISABLE TRIGGER ' + QUOTENAME(schema_name)"]);
    expect(record).toBeLessThan(disable);
    expect(hold).toContain("WHERE tr.is_disabled = 0 AND tr.is_ms_shipped = 0 AND t.is_ms_shipped = 0 AND tr.name NOT LIKE N'airlift[_]%'");
    expect(hold).toContain("N' NOCHECK CONSTRAINT ' + QUOTENAME(object_name)");
    expect(hold).toContain('WHERE fk.is_disabled = 0');
  });

  test('release (under the fence, as the switch opens a side) gives back only what was held and reads no row: foreign keys WITH NOCHECK, the trusted ones recorded (issue 20, defect 2)', () => {
    const { sql: release } = capture.releaseStatement;
    expect(release).toContain("N'ENABLE TRIGGER ' + QUOTENAME(schema_name) + N'.' + QUOTENAME(object_name) + N' ON '");
    // "ALTER TABLE (Transact-SQL)", learn.microsoft.com/sql/t-sql/statements/alter-table-transact-sql:
    // WITH CHECK CHECK CONSTRAINT validates every existing row (a scan of the child table); WITH
    // NOCHECK re-enables the key for new rows without reading the existing ones (it is then not trusted).
    expect(release).toContain("N' WITH NOCHECK CHECK CONSTRAINT ' + QUOTENAME(object_name)");
    expect(release).not.toMatch(/WITH CHECK/);
    const [record, enable, forget] = positions(release, ['INSERT INTO dbo.airlift_untrusted', 'EXEC sys.sp_executesql @sql;', 'DELETE FROM dbo.airlift_held;']);
    expect(record).toBeLessThan(enable);
    expect(enable).toBeLessThan(forget);
    expect(release).toContain("WHERE h.kind = N'foreign_key' AND h.was_trusted = 1");
  });

  test('a fenced side (the source) holds its triggers only: its foreign keys are never touched', () => {
    const { sql: hold } = capture.holdTriggersStatement;
    expect(hold).toContain("N'DISABLE TRIGGER '");
    expect(hold).not.toContain('sys.foreign_keys');
  });

  test('trust comes back online, one key at a time, each forgotten once validated (an interrupted run goes on)', () => {
    const { sql: retrust } = capture.retrustStatement;
    const [pick, validate, forget] = positions(retrust, ['SELECT TOP (1) @schema = schema_name', "N' WITH CHECK CHECK CONSTRAINT ' + QUOTENAME(@key)", 'DELETE FROM dbo.airlift_untrusted WHERE']);
    expect(pick).toBeLessThan(validate);
    expect(validate).toBeLessThan(forget);
    expect(retrust).toContain('fk.is_disabled = 0 AND fk.is_not_trusted = 1');
  });

  test('stopCapture drops only airlift triggers, by their prefix, and the gate tables only without a fence', () => {
    expect(capture.dropTriggersStatement('capture').sql).toContain("WHERE tr.parent_class = 1 AND tr.name LIKE N'airlift[_]capture[_]%'");
    expect(capture.dropCaptureTablesStatement(false).sql).not.toContain('airlift_gate');
    expect(capture.dropCaptureTablesStatement(true).sql).toContain('DROP TABLE dbo.airlift_gate;');
  });
});

describe('tables change capture cannot copy exactly are refused before anything is installed', () => {
  test('no primary key, a key wider than the log, sql_variant or user-defined columns', () => {
    expect(capture.captureRefusals(plain, true)).toEqual([]);
    expect(capture.captureRefusals(hostile, true)).toEqual([]);
    expect(capture.captureRefusals(plain, false)[0]).toMatch(/^table dbo\.budgets has no primary key: .* add one/);
    const wide = { ...plain, key: Array.from({ length: 9 }, (_, i) => `c${i}`), columns: Array.from({ length: 9 }, (_, i) => ({ name: `c${i}`, type: 'int' })) };
    expect(capture.captureRefusals(wide, true)).toEqual([expect.stringMatching(/a primary key of 9 columns is more than change capture holds \(8\)/)]);
    expect(capture.captureRefusals({ ...plain, columns: [...plain.columns, { name: 'v', type: 'sql_variant' }] }, true)).toEqual([
      expect.stringMatching(/column v has type sql_variant, which change capture cannot copy exactly/),
    ]);
  });
});

test.each([
  ['capture schema', capture.captureSchema],
  ['capture trigger (hostile names)', capture.captureTriggerStatement(hostile)],
  ['capture trigger (composite key with a date)', capture.captureTriggerStatement(plain)],
  ['fence trigger', capture.fenceTriggerStatement(plain)],
  ['drop capture triggers', capture.dropTriggersStatement('capture')],
  ['safe point', capture.safePointStatement],
  ['read changes', capture.readChangesQuery],
  ['read rows', capture.readRowsQuery(hostile, 2)],
  ['apply begin', capture.applyBeginStatement],
  ['apply end', capture.applyEndStatement],
  ['upsert rows (identity)', capture.upsertRowsStatement(hostile, 2)],
  ['delete rows', capture.deleteRowsStatement(plain, 2)],
  ['hold tenant triggers and foreign keys', capture.holdStatement],
  ['release held', capture.releaseStatement],
  ['hold tenant triggers only (fenced)', capture.holdTriggersStatement],
  ['restore foreign key trust online', capture.retrustStatement],
  ['drop capture tables', capture.dropCaptureTablesStatement(false)],
  ['reset restored log', capture.resetChangesStatement],
])('%s statement', (_name, statement) => {
  expect(tsql.renderStatement(statement)).toMatchSnapshot();
});
