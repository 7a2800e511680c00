// Change capture on SQL Server, as T-SQL text: the change log, the triggers that fill it and refuse
// writes while the gate is closed, the safe point a reader may read up to, the key-matched row read,
// the applier's upsert and delete, and holding the tenant's own triggers and foreign keys aside.
// Identifiers are validated and bracket-quoted; every value is a parameter with a declared type.
//
// Design (documentation each rule rests on, as the tests cite it):
//  - One AFTER INSERT, UPDATE, DELETE trigger per table reads the `inserted` and `deleted` tables
//    ("Use the inserted and deleted tables"; "Create DML triggers to handle multiple rows of data":
//    one firing per statement, however many rows), set-based: the new keys from `inserted`, and the
//    keys in `deleted` that are no longer there (a delete, or the old key of an update that changed it).
//  - The change log keeps each key column in an sql_variant (k0 … k7), in its wire form (below). One
//    log for every table keeps one seq order across tables; sql_variant keeps the base type, so an
//    int key comes back an int and a text form comes back text. sql_variant cannot hold
//    (n)varchar(max), varbinary(max), xml, text, ntext, image, rowversion, sql_variant, the CLR types
//    and user-defined types ("sql_variant (Transact-SQL)"), and at most 8,000 bytes: none of those can
//    be a primary key column except sql_variant and CLR types, which are refused (hierarchyid goes as
//    varbinary). A table without a primary key is refused: a key-only log cannot tell duplicates apart.
//  - Ordering: IDENTITY values are handed out before their transactions commit, and not in commit
//    order ("IDENTITY (Property)": not guaranteed consecutive, "use an exclusive lock" when they must
//    be). Every capturing transaction takes the `airlift_changes` application lock in Shared mode,
//    owned by the transaction, before its first seq is assigned (sp_getapplock: a Transaction-owned
//    lock is released when the transaction commits or rolls back); writers do not wait for each other
//    (Shared is compatible with Shared). A reader takes the same lock Exclusive for an instant: once it
//    is granted, every seq assigned so far belongs to a transaction that has ended, so MAX(seq) then is
//    a safe point, and nothing committed later can get a seq at or below it. The reader waits at most
//    SAFE_POINT_WAIT_MS (a long tenant transaction then delays replication, not the tenant's writes for
//    long) and otherwise keeps its previous safe point.
//  - The applier marks its own transaction: sp_set_session_context `airlift_applying` =
//    CURRENT_TRANSACTION_ID(), @read_only = 0, and the triggers skip a transaction so marked. The mark
//    names one transaction, so a value left on a pooled connection (a batch aborted before it was
//    cleared) never matches a later transaction on that connection; it is cleared at the end anyway.
//  - While a side is not open, its tenant triggers are disabled (DISABLE TRIGGER: the trigger stays,
//    it only stops firing), each recorded in dbo.airlift_held so exactly those are given back. A
//    standby target (restored, never open in this migration, where the forward stream applies rows
//    out of the tenant's statement order) also has its foreign keys unchecked (ALTER TABLE … NOCHECK
//    CONSTRAINT). A fenced side (the source under the cut-over's fence, or after the flip) keeps its
//    foreign keys as they are: its gate already stops every writer, and giving keys back there would
//    touch the production source's constraints (issue 20, defect 2).
//  - Giving foreign keys back happens under the fence (the switch opens the target): ALTER TABLE …
//    WITH NOCHECK CHECK CONSTRAINT re-enables a key without reading a row ("ALTER TABLE
//    (Transact-SQL)": WITH NOCHECK, existing data is not validated; the constraint is then not
//    trusted, sys.foreign_keys.is_not_trusted = 1). The keys that were trusted are recorded in
//    dbo.airlift_untrusted, and `retrustStatement` re-validates them (WITH CHECK CHECK CONSTRAINT, a
//    read of the child table) online, once the side is the open primary, never while writes wait.
import { createHash } from 'node:crypto';
import { quoteBracketed as b } from './identifiers';
import type { MssqlColumn, MssqlTable, Statement } from './mssql-sql';

/** Key columns a change-log entry holds; a wider primary key is refused by `captureRefusals`. */
export const MAX_KEY_COLUMNS = 8;
/** THROWn by every write (trigger or tracking write) while the write gate is not open: FencedWriteError. */
export const FENCED_ERROR = 51000;
/** THROWn when a trigger did not get the change-log lock in time: transient. */
export const CHANGES_LOCK_ERROR = 51001;
/** THROWn by an apply into a database that takes writes (or holds no cursor): ReplicationConflictError. */
export const CONFLICT_ERROR = 51002;
/** Application lock resource that orders change-log seqs (sp_getapplock compares it binary). */
export const CHANGES_LOCK = 'airlift_changes';
/** How long a writer's trigger waits for the change-log lock (only a reader's instant holds it Exclusive). */
export const CHANGES_LOCK_TIMEOUT_MS = 30000;
/** How long a reader waits for a safe point before keeping its previous one. */
export const SAFE_POINT_WAIT_MS = 250;
/** A request carries at most 2,100 parameters; airlift stays below this per statement. */
export const MAX_PARAMS = 2000;

const qualified = (t: { schema: string; name: string }) => `${b(t.schema)}.${b(t.name)}`;

/** The table's name as `listTables` gives it (and the change log records it): `name` in dbo, else `schema.name`. */
export const tableId = (t: { schema: string; name: string }) => (t.schema === 'dbo' ? t.name : `${t.schema}.${t.name}`);

const literal = (text: string) => `N'${text.replace(/'/g, "''")}'`;

/** Capture and fence triggers are named by a hash of their table, so any table name gives a valid, unique name. */
export function triggerName(table: MssqlTable, kind: 'capture' | 'fence'): string {
  return `airlift_${kind}_${createHash('sha256').update(`${table.schema}.${table.name}`).digest('hex').slice(0, 16)}`;
}

/** The column's exact SQL type, e.g. `nvarchar(100)`, `decimal(18, 4)`, `datetime2(3)`. */
export function sqlType(c: MssqlColumn): string {
  const t = c.type.toLowerCase();
  const len = (n: number | undefined, perChar = 1) => (n === undefined || n < 0 ? 'max' : String(n / perChar));
  if (['char', 'varchar', 'binary', 'varbinary'].includes(t)) return `${t}(${len(c.maxLength)})`;
  if (['nchar', 'nvarchar'].includes(t)) return `${t}(${len(c.maxLength, 2)})`;
  if (['decimal', 'numeric'].includes(t)) return `${t}(${c.precision ?? 38}, ${c.scale ?? 0})`;
  if (['datetime2', 'time', 'datetimeoffset'].includes(t)) return `${t}(${c.scale ?? 7})`;
  return t;
}

/**
 * How a column's value travels between the two servers through this process, exactly: `read` selects
 * it, `param` is the declared type of the parameter that carries it back, `write` turns that
 * parameter into the column's type. Types the driver would round through a JavaScript number or Date
 * (decimal, money, dates and times) travel as text; CLR types as their binary form; char/varchar as
 * Unicode text that the column's own collation converts on the way in.
 */
export interface Wire {
  read(expr: string): string;
  param: string;
  write(expr: string): string;
  /** The server makes the value (rowversion, computed): read, never written. */
  generated: boolean;
}

export function wireOf(c: MssqlColumn): Wire {
  const t = c.type.toLowerCase();
  const exact = sqlType(c);
  const same = (param: string): Wire => ({ read: (e) => e, param, write: (e) => e, generated: false });
  if (c.computed || t === 'timestamp' || t === 'rowversion') return { ...same('varbinary(8)'), generated: true };
  if (['int', 'smallint', 'tinyint', 'bigint', 'float', 'real', 'uniqueidentifier'].includes(t)) return same(t);
  if (t === 'bit') return { read: (e) => `CAST(${e} AS tinyint)`, param: 'tinyint', write: (e) => `CAST(${e} AS bit)`, generated: false };
  if (['char', 'varchar', 'nchar', 'nvarchar'].includes(t)) {
    const n = c.maxLength === undefined || c.maxLength < 0 ? 'max' : String(Math.min(4000, t.startsWith('n') ? c.maxLength / 2 : c.maxLength));
    return { read: (e) => e, param: `nvarchar(${n})`, write: (e) => `CAST(${e} AS ${exact})`, generated: false };
  }
  if (['binary', 'varbinary'].includes(t)) return { read: (e) => e, param: exact.replace(/^binary/, 'varbinary'), write: (e) => `CAST(${e} AS ${exact})`, generated: false };
  if (t === 'text' || t === 'ntext') return same('nvarchar(max)');
  if (t === 'image') return same('varbinary(max)');
  if (['decimal', 'numeric'].includes(t)) return { read: (e) => `CONVERT(nvarchar(64), ${e})`, param: 'nvarchar(64)', write: (e) => `CAST(${e} AS ${exact})`, generated: false };
  // money styles: 2 keeps all four decimals (style 0 rounds to two).
  if (['money', 'smallmoney'].includes(t)) return { read: (e) => `CONVERT(nvarchar(64), ${e}, 2)`, param: 'nvarchar(64)', write: (e) => `CAST(${e} AS ${t})`, generated: false };
  // Style 121 (ODBC canonical with fractions) keeps every digit of the type's scale, and the offset.
  if (['date', 'datetime', 'datetime2', 'smalldatetime', 'datetimeoffset', 'time'].includes(t))
    return { read: (e) => `CONVERT(nvarchar(64), ${e}, 121)`, param: 'nvarchar(64)', write: (e) => `CONVERT(${exact}, ${e}, 121)`, generated: false };
  if (t === 'xml') return { read: (e) => `CONVERT(nvarchar(max), ${e})`, param: 'nvarchar(max)', write: (e) => `CONVERT(xml, ${e})`, generated: false };
  if (['hierarchyid', 'geography', 'geometry'].includes(t))
    return { read: (e) => `CAST(${e} AS varbinary(max))`, param: 'varbinary(max)', write: (e) => `CAST(${e} AS ${t})`, generated: false };
  throw new Error(`column ${c.name}: type ${c.type} is not supported by change capture`);
}

/** Why a table cannot be captured, one line each naming the table and the fix; empty when it can. */
export function captureRefusals(table: MssqlTable, hasPrimaryKey: boolean): string[] {
  const name = `${table.schema}.${table.name}`;
  const problems: string[] = [];
  if (!hasPrimaryKey) problems.push(`table ${name} has no primary key: change capture on SQL Server identifies rows by it; add one (e.g. ALTER TABLE ${qualified(table)} ADD PRIMARY KEY (…))`);
  if (table.key.length > MAX_KEY_COLUMNS) problems.push(`table ${name}: a primary key of ${table.key.length} columns is more than change capture holds (${MAX_KEY_COLUMNS})`);
  for (const c of table.columns) {
    try {
      const wire = wireOf(c);
      if (table.key.includes(c.name) && /\(max\)/.test(wire.param)) problems.push(`table ${name}: key column ${c.name} (${c.type}) does not fit the change log's sql_variant (8,000 bytes)`);
    } catch {
      problems.push(`table ${name}: column ${c.name} has type ${c.type}, which change capture cannot copy exactly (sql_variant and user-defined types are not supported); convert the column or leave the tenant on its server`);
    }
  }
  return problems;
}

const keyColumns = (n: number) => Array.from({ length: n }, (_, i) => `k${i}`);

/** Tenant objects held aside while a side is not open (see `holdStatement`). */
const HELD_TABLE = [
  "IF OBJECT_ID(N'dbo.airlift_held', N'U') IS NULL",
  "  CREATE TABLE dbo.airlift_held (kind nvarchar(16) NOT NULL CHECK (kind IN (N'trigger', N'foreign_key')), schema_name sysname NOT NULL, table_name sysname NOT NULL, object_name sysname NOT NULL, was_trusted bit NULL, PRIMARY KEY (kind, schema_name, table_name, object_name));",
].join('\n');

/**
 * airlift's tables: the change log (seq order is commit order, see `safePointStatement`) and the
 * objects held aside while a side is not open. The gate and cursors come from `gateSchema`.
 */
export const captureSchema: Statement = {
  sql: [
    "IF OBJECT_ID(N'dbo.airlift_changes', N'U') IS NULL",
    `  CREATE TABLE dbo.airlift_changes (seq bigint IDENTITY(1, 1) NOT NULL PRIMARY KEY, tbl nvarchar(300) NOT NULL, ${keyColumns(MAX_KEY_COLUMNS).map((k) => `${k} sql_variant NULL`).join(', ')});`,
    HELD_TABLE,
  ].join('\n'),
  params: {},
};


/** The gate check every capturing or fencing trigger runs first; THROWs FENCED_ERROR when closed. */
function refuseUnlessOpen(indent: string): string[] {
  return [
    // Triggers run in the writer's transaction; a SET here reverts when the trigger returns. READ
    // COMMITTED makes the HOLDLOCK read below lock-based even in a SNAPSHOT session; the shared lock
    // it holds to commit makes setWriteGate's UPDATE wait for this writer.
    'SET TRANSACTION ISOLATION LEVEL READ COMMITTED;',
    'DECLARE @airlift_state nvarchar(16), @airlift_migration nvarchar(64), @airlift_message nvarchar(2048), @airlift_lock int;',
    'SELECT @airlift_state = state, @airlift_migration = migration_id FROM dbo.airlift_gate WITH (HOLDLOCK) WHERE id = 1;',
    "IF @airlift_state IS NOT NULL AND @airlift_state <> N'open'",
    'BEGIN',
    "  SET @airlift_message = CONCAT(N'airlift_fenced: tenant database ', DB_NAME(), N' is ', @airlift_state, N' (migration ', ISNULL(@airlift_migration, N'unknown'), N'); reload the route and retry');",
    `  THROW ${FENCED_ERROR}, @airlift_message, 1;`,
    'END;',
  ].map((l) => indent + l);
}

/** The applier's own transaction, marked by `applyBeginStatement`: neither captured nor refused. */
const SKIP_APPLIER = "IF SESSION_CONTEXT(N'airlift_applying') = CURRENT_TRANSACTION_ID() RETURN;";

/**
 * The capture trigger of one table (its own batch: CREATE OR ALTER TRIGGER, SQL Server 2016 SP1 or
 * later, makes installing twice harmless).
 */
export function captureTriggerStatement(table: MssqlTable): Statement {
  const keys = table.key.map((k) => {
    const column = table.columns.find((c) => c.name === k);
    if (!column) throw new Error(`table ${table.schema}.${table.name}: key column ${k} is not among its columns`);
    return { name: k, wire: wireOf(column) };
  });
  const kcols = keyColumns(keys.length).join(', ');
  const from = (alias: string) => keys.map((k) => k.wire.read(`${alias}.${b(k.name)}`)).join(', ');
  const sameKey = keys.map((k) => `i.${b(k.name)} = d.${b(k.name)}`).join(' AND ');
  return {
    sql: [
      `CREATE OR ALTER TRIGGER ${b(table.schema)}.${b(triggerName(table, 'capture'))} ON ${qualified(table)} AFTER INSERT, UPDATE, DELETE AS`,
      'BEGIN',
      '  SET NOCOUNT ON;',
      '  SET XACT_ABORT ON;',
      `  ${SKIP_APPLIER}`,
      '  IF NOT EXISTS (SELECT 1 FROM inserted) AND NOT EXISTS (SELECT 1 FROM deleted) RETURN;',
      ...refuseUnlessOpen('  '),
      `  EXEC @airlift_lock = sys.sp_getapplock @Resource = N'${CHANGES_LOCK}', @LockMode = 'Shared', @LockOwner = 'Transaction', @LockTimeout = ${CHANGES_LOCK_TIMEOUT_MS};`,
      `  IF @airlift_lock < 0 THROW ${CHANGES_LOCK_ERROR}, N'airlift: the change log lock was not granted within ${CHANGES_LOCK_TIMEOUT_MS / 1000} s (sp_getapplock returned < 0); retry the write', 1;`,
      `  INSERT INTO dbo.airlift_changes (tbl, ${kcols})`,
      `  SELECT ${literal(tableId(table))}, ${from('i')} FROM inserted AS i`,
      '  UNION ALL',
      `  SELECT ${literal(tableId(table))}, ${from('d')} FROM deleted AS d WHERE NOT EXISTS (SELECT 1 FROM inserted AS i WHERE ${sameKey});`,
      'END;',
    ].join('\n'),
    params: {},
  };
}

/** What a retired source keeps (stopCapture with keepFence): a trigger that only refuses writes while the gate is closed. */
export function fenceTriggerStatement(table: MssqlTable): Statement {
  return {
    sql: [
      `CREATE OR ALTER TRIGGER ${b(table.schema)}.${b(triggerName(table, 'fence'))} ON ${qualified(table)} AFTER INSERT, UPDATE, DELETE AS`,
      'BEGIN',
      '  SET NOCOUNT ON;',
      '  SET XACT_ABORT ON;',
      `  ${SKIP_APPLIER}`,
      ...refuseUnlessOpen('  '),
      'END;',
    ].join('\n'),
    params: {},
  };
}

/** Drops every trigger airlift made of one kind (`capture` or `fence`), whatever table it is on. */
export function dropTriggersStatement(kind: 'capture' | 'fence'): Statement {
  return {
    sql: [
      'DECLARE @sql nvarchar(max) = (',
      "  SELECT N'DROP TRIGGER ' + QUOTENAME(SCHEMA_NAME(o.schema_id)) + N'.' + QUOTENAME(tr.name) + N';'",
      '  FROM sys.triggers AS tr JOIN sys.objects AS o ON o.object_id = tr.object_id',
      `  WHERE tr.parent_class = 1 AND tr.name LIKE N'airlift[_]${kind}[_]%'`,
      "  FOR XML PATH(''), TYPE).value(N'.', N'nvarchar(max)');",
      'IF @sql IS NOT NULL EXEC sys.sp_executesql @sql;',
    ].join('\n'),
    params: {},
  };
}

/**
 * The highest seq no capturing transaction can still commit below: the change-log lock taken
 * Exclusive for an instant (see the design notes). `safe_head` is NULL when the lock was not granted
 * within SAFE_POINT_WAIT_MS; the caller then keeps its previous safe point.
 */
export const safePointStatement: Statement = {
  sql: [
    'SET XACT_ABORT ON;',
    'SET TRANSACTION ISOLATION LEVEL READ COMMITTED;',
    'DECLARE @lock int, @safe bigint;',
    'BEGIN TRANSACTION;',
    `EXEC @lock = sys.sp_getapplock @Resource = N'${CHANGES_LOCK}', @LockMode = 'Exclusive', @LockOwner = 'Transaction', @LockTimeout = ${SAFE_POINT_WAIT_MS};`,
    'IF @lock >= 0 SELECT @safe = ISNULL(MAX(seq), 0) FROM dbo.airlift_changes;',
    'COMMIT TRANSACTION;',
    'SELECT @safe AS safe_head;',
  ].join('\n'),
  params: {},
};

/** Changes after `@after` up to the safe point `@upTo`, oldest first. */
export const readChangesQuery: Statement = {
  sql: `SELECT TOP (@limit) seq, tbl, ${keyColumns(MAX_KEY_COLUMNS).join(', ')} FROM dbo.airlift_changes WHERE seq > @after AND seq <= @upTo ORDER BY seq;`,
  params: {},
  types: { limit: 'int', after: 'bigint', upTo: 'bigint' },
};

/** Whether the change log is installed. */
export const captureInstalledQuery: Statement = { sql: "SELECT CAST(CASE WHEN OBJECT_ID(N'dbo.airlift_changes', N'U') IS NULL THEN 0 ELSE 1 END AS bit) AS installed;", params: {} };

/** Empties a restored database's change log: it starts its own (the source's entries are the source's). */
export const resetChangesStatement: Statement = {
  sql: "IF OBJECT_ID(N'dbo.airlift_changes', N'U') IS NOT NULL DELETE FROM dbo.airlift_changes;",
  params: {},
};

/** How many keys (or rows) of a table fit one statement under the parameter limit. */
export function rowsPerStatement(table: MssqlTable, perRow: 'key' | 'row'): number {
  const width = perRow === 'key' ? table.key.length + 1 : table.columns.length;
  return Math.max(1, Math.min(1000, Math.floor(MAX_PARAMS / Math.max(1, width))));
}

function column(table: MssqlTable, name: string): MssqlColumn {
  const c = table.columns.find((x) => x.name === name);
  if (!c) throw new Error(`table ${table.schema}.${table.name}: no column ${name}`);
  return c;
}

/**
 * The current rows for `count` keys, by key: `@k<row>_<i>` carry the keys in their wire form, each
 * declared with its wire type; rows come back with `n` (the key's position) and the columns read in
 * their wire form. A key with no row does not come back.
 */
export function readRowsQuery(table: MssqlTable, count: number): Statement {
  const keys = table.key.map((k) => ({ name: k, wire: wireOf(column(table, k)) }));
  const types: Record<string, string> = {};
  const rows = Array.from({ length: count }, (_, r) => {
    keys.forEach((k, i) => (types[`k${r}_${i}`] = k.wire.param));
    return `(${[String(r), ...keys.map((_, i) => `@k${r}_${i}`)].join(', ')})`;
  });
  const match = keys.map((k, i) => `t.${b(k.name)} = ${k.wire.write(`v.k${i}`)}`).join(' AND ');
  const cols = table.columns.map((c, i) => `${wireOf(c).read(`t.${b(c.name)}`)} AS c${i}`);
  return {
    sql: `SELECT v.n, ${cols.join(', ')} FROM (VALUES ${rows.join(', ')}) AS v (n, ${keyColumns(keys.length).join(', ')}) JOIN ${qualified(table)} AS t ON ${match} ORDER BY v.n;`,
    params: {},
    types,
  };
}

/**
 * Opens an apply, in the caller's transaction: refuses (CONFLICT_ERROR) a database that takes writes
 * or holds no cursor, reads the stream's cursor under an update lock, and, unless the batch is stale
 * (`skip` = 1), marks this transaction as the applier's. The gate is read WITH (UPDLOCK, HOLDLOCK) so
 * a switch that opens this side waits for the apply, and an apply after it sees the gate open.
 */
export const applyBeginStatement: Statement = {
  sql: [
    'SET XACT_ABORT ON;',
    'DECLARE @state nvarchar(16), @gate_migration nvarchar(64), @cursor bigint, @tx bigint = CURRENT_TRANSACTION_ID(), @message nvarchar(2048);',
    "IF OBJECT_ID(N'dbo.airlift_cursors', N'U') IS NULL OR OBJECT_ID(N'dbo.airlift_gate', N'U') IS NULL",
    `  THROW ${CONFLICT_ERROR}, N'airlift_conflict: changes cannot be applied: the database holds no airlift cursor (capture was removed or it was never restored by airlift)', 1;`,
    'SELECT @state = state, @gate_migration = migration_id FROM dbo.airlift_gate WITH (UPDLOCK, HOLDLOCK) WHERE id = 1;',
    "IF @state IS NULL OR @state = N'open'",
    'BEGIN',
    "  SET @message = CONCAT(N'airlift_conflict: changes are not applied to a database that takes writes (its write gate is ', ISNULL(@state, N'absent'), N'); this replication stream has ended');",
    `  THROW ${CONFLICT_ERROR}, @message, 1;`,
    'END;',
    // A zombie applier of a rolled-back migration never writes into the next migration's standby side.
    "IF @gate_migration IS NULL OR @gate_migration <> @migration",
    'BEGIN',
    "  SET @message = CONCAT(N'airlift_conflict: changes of migration ', @migration, N' are not applied here: its write gate belongs to migration ', ISNULL(@gate_migration, N'unknown'), N'; this replication stream has ended');",
    `  THROW ${CONFLICT_ERROR}, @message, 1;`,
    'END;',
    'SELECT @cursor = cursor_seq FROM dbo.airlift_cursors WITH (UPDLOCK, HOLDLOCK) WHERE stream = @stream;',
    'IF ISNULL(@cursor, 0) >= @upTo',
    '  SELECT CAST(1 AS bit) AS skip;',
    'ELSE',
    'BEGIN',
    "  EXEC sys.sp_set_session_context @key = N'airlift_applying', @value = @tx, @read_only = 0;",
    '  SELECT CAST(0 AS bit) AS skip;',
    'END;',
  ].join('\n'),
  params: {},
  types: { stream: 'nvarchar(128)', upTo: 'bigint', migration: 'nvarchar(64)' },
};

/** Closes an apply: clears the mark (the cursor is advanced next, by `advanceCursorStatement`, in the same transaction). */
export const applyEndStatement: Statement = {
  sql: "EXEC sys.sp_set_session_context @key = N'airlift_applying', @value = NULL, @read_only = 0;",
  params: {},
};

/** Deletes the rows of `count` keys (`@k<row>_<i>`); selects `written`. */
export function deleteRowsStatement(table: MssqlTable, count: number): Statement {
  const keys = table.key.map((k) => ({ name: k, wire: wireOf(column(table, k)) }));
  const types: Record<string, string> = {};
  const rows = Array.from({ length: count }, (_, r) => {
    keys.forEach((k, i) => (types[`k${r}_${i}`] = k.wire.param));
    return `(${keys.map((_, i) => `@k${r}_${i}`).join(', ')})`;
  });
  const match = keys.map((k, i) => `t.${b(k.name)} = ${k.wire.write(`v.k${i}`)}`).join(' AND ');
  return {
    sql: [
      `DELETE t FROM ${qualified(table)} AS t JOIN (VALUES ${rows.join(', ')}) AS v (${keyColumns(keys.length).join(', ')}) ON ${match};`,
      'SELECT @@ROWCOUNT AS written;',
    ].join('\n'),
    params: {},
    types,
  };
}

/**
 * Upserts `count` row images (`@r<row>_<column>`, every column in wire form): UPDATE the rows whose
 * key is there (key columns too, so a key that changed only in case under a case-insensitive
 * collation comes out as the origin has it), then INSERT the others, with IDENTITY_INSERT ON around
 * the insert when the table has an identity column and OFF again even when it fails ("only one table
 * in a session can have the IDENTITY_INSERT property set to ON"). Generated columns are not written.
 * Selects `written`.
 */
export function upsertRowsStatement(table: MssqlTable, count: number): Statement {
  const cols = table.columns.map((c, i) => ({ ...c, i, wire: wireOf(c) }));
  const types: Record<string, string> = {};
  const rows = Array.from({ length: count }, (_, r) => {
    cols.forEach((c) => (types[`r${r}_${c.i}`] = c.wire.param));
    return `(${cols.map((c) => `@r${r}_${c.i}`).join(', ')})`;
  });
  const values = `(VALUES ${rows.join(', ')}) AS v (${cols.map((c) => `c${c.i}`).join(', ')})`;
  const keyCols = table.key.map((k) => cols.find((c) => c.name === k)!);
  const match = keyCols.map((k) => `t.${b(k.name)} = ${k.wire.write(`v.c${k.i}`)}`).join(' AND ');
  const written = cols.filter((c) => !c.wire.generated);
  const settable = written.filter((c) => !c.identity);
  const t = qualified(table);
  const identity = cols.some((c) => c.identity);
  const insert = `INSERT INTO ${t} (${written.map((c) => b(c.name)).join(', ')}) SELECT ${written.map((c) => c.wire.write(`v.c${c.i}`)).join(', ')} FROM ${values} WHERE NOT EXISTS (SELECT 1 FROM ${t} AS t WHERE ${match});`;
  return {
    sql: [
      'DECLARE @updated int = 0, @inserted int = 0;',
      ...(settable.length ? [`UPDATE t SET ${settable.map((c) => `t.${b(c.name)} = ${c.wire.write(`v.c${c.i}`)}`).join(', ')} FROM ${t} AS t JOIN ${values} ON ${match};`, 'SET @updated = @@ROWCOUNT;'] : []),
      ...(identity
        ? [
          `SET IDENTITY_INSERT ${t} ON;`,
          'BEGIN TRY',
          `  ${insert}`,
          '  SET @inserted = @@ROWCOUNT;',
          'END TRY',
          'BEGIN CATCH',
          `  SET IDENTITY_INSERT ${t} OFF;`,
          '  THROW;',
          'END CATCH;',
          `SET IDENTITY_INSERT ${t} OFF;`,
        ]
        : [insert, 'SET @inserted = @@ROWCOUNT;']),
      'SELECT @updated + @inserted AS written;',
    ].join('\n'),
    params: {},
    types,
  };
}

/** The held objects, as the statements that disable (`hold`) or give back (`release`) each of them. */
function heldScript(action: 'hold' | 'release'): string {
  const target = "QUOTENAME(schema_name) + N'.' + QUOTENAME(table_name)";
  const each =
    action === 'hold'
      ? `CASE kind WHEN N'trigger' THEN N'DISABLE TRIGGER ' + QUOTENAME(schema_name) + N'.' + QUOTENAME(object_name) + N' ON ' + ${target} ELSE N'ALTER TABLE ' + ${target} + N' NOCHECK CONSTRAINT ' + QUOTENAME(object_name) END`
      : `CASE kind WHEN N'trigger' THEN N'ENABLE TRIGGER ' + QUOTENAME(schema_name) + N'.' + QUOTENAME(object_name) + N' ON ' + ${target} ELSE N'ALTER TABLE ' + ${target} + N' WITH NOCHECK CHECK CONSTRAINT ' + QUOTENAME(object_name) END`;
  return [
    'DECLARE @sql nvarchar(max) = (',
    `  SELECT ${each} + N';'`,
    '  FROM dbo.airlift_held AS h',
    '  WHERE EXISTS (SELECT 1 FROM sys.objects AS o WHERE o.name = h.object_name AND o.schema_id = SCHEMA_ID(h.schema_name))',
    "  FOR XML PATH(''), TYPE).value(N'.', N'nvarchar(max)');",
    'IF @sql IS NOT NULL EXEC sys.sp_executesql @sql;',
  ].join('\n');
}

const HELD_TRIGGERS = [
  "SELECT N'trigger', s.name, t.name, tr.name, NULL",
  'FROM sys.triggers AS tr JOIN sys.tables AS t ON t.object_id = tr.parent_id JOIN sys.schemas AS s ON s.schema_id = t.schema_id',
  "WHERE tr.is_disabled = 0 AND tr.is_ms_shipped = 0 AND t.is_ms_shipped = 0 AND tr.name NOT LIKE N'airlift[_]%'",
  "  AND NOT EXISTS (SELECT 1 FROM dbo.airlift_held AS h WHERE h.kind = N'trigger' AND h.schema_name = s.name AND h.table_name = t.name AND h.object_name = tr.name)",
];

/**
 * Holds the tenant's enabled triggers and foreign keys aside on a standby target (where the forward
 * stream applies), recording each in dbo.airlift_held first, in the caller's transaction. airlift's
 * own triggers are not held.
 */
export const holdStatement: Statement = {
  sql: [
    HELD_TABLE,
    'INSERT INTO dbo.airlift_held (kind, schema_name, table_name, object_name, was_trusted)',
    ...HELD_TRIGGERS,
    'UNION ALL',
    "SELECT N'foreign_key', s.name, t.name, fk.name, CASE WHEN fk.is_not_trusted = 0 THEN 1 ELSE 0 END",
    'FROM sys.foreign_keys AS fk JOIN sys.tables AS t ON t.object_id = fk.parent_object_id JOIN sys.schemas AS s ON s.schema_id = t.schema_id',
    "WHERE fk.is_disabled = 0 AND t.is_ms_shipped = 0 AND t.name NOT LIKE N'airlift[_]%'",
    "  AND NOT EXISTS (SELECT 1 FROM dbo.airlift_held AS h WHERE h.kind = N'foreign_key' AND h.schema_name = s.name AND h.table_name = t.name AND h.object_name = fk.name);",
    heldScript('hold'),
  ].join('\n'),
  params: {},
};

/** Holds only the tenant's triggers on a fenced side: its foreign keys are not touched (see the design notes). */
export const holdTriggersStatement: Statement = {
  sql: [HELD_TABLE, 'INSERT INTO dbo.airlift_held (kind, schema_name, table_name, object_name, was_trusted)', ...HELD_TRIGGERS.slice(0, -1), `${HELD_TRIGGERS.at(-1)};`, heldScript('hold')].join('\n'),
  params: {},
};

const UNTRUSTED_TABLE = [
  "IF OBJECT_ID(N'dbo.airlift_untrusted', N'U') IS NULL",
  '  CREATE TABLE dbo.airlift_untrusted (schema_name sysname NOT NULL, table_name sysname NOT NULL, object_name sysname NOT NULL, PRIMARY KEY (schema_name, table_name, object_name));',
].join('\n');

/**
 * Gives back exactly what `holdStatement` held, then forgets it, in the caller's transaction: foreign
 * keys WITH NOCHECK (no row read under the fence), those that were trusted recorded for `retrustStatement`.
 */
export const releaseStatement: Statement = {
  sql: [
    "IF OBJECT_ID(N'dbo.airlift_held', N'U') IS NOT NULL",
    'BEGIN',
    UNTRUSTED_TABLE,
    'INSERT INTO dbo.airlift_untrusted (schema_name, table_name, object_name)',
    "SELECT h.schema_name, h.table_name, h.object_name FROM dbo.airlift_held AS h WHERE h.kind = N'foreign_key' AND h.was_trusted = 1",
    '  AND NOT EXISTS (SELECT 1 FROM dbo.airlift_untrusted AS u WHERE u.schema_name = h.schema_name AND u.table_name = h.table_name AND u.object_name = h.object_name);',
    heldScript('release'),
    'DELETE FROM dbo.airlift_held;',
    'END;',
  ].join('\n'),
  params: {},
};

/**
 * Online, on the open primary: re-validates each foreign key that `releaseStatement` gave back
 * untrusted (ALTER TABLE … WITH CHECK CHECK CONSTRAINT reads the child table) and forgets it once it
 * is trusted again, one at a time, so an interrupted run goes on where it stopped. A key the tenant
 * dropped or disabled meanwhile is forgotten. Rows that break a key stop it with the server's error (547).
 */
export const retrustStatement: Statement = {
  sql: [
    "IF OBJECT_ID(N'dbo.airlift_untrusted', N'U') IS NOT NULL",
    'BEGIN',
    '  DECLARE @schema sysname, @table sysname, @key sysname, @sql nvarchar(max);',
    '  WHILE 1 = 1',
    '  BEGIN',
    '    SELECT TOP (1) @schema = schema_name, @table = table_name, @key = object_name FROM dbo.airlift_untrusted ORDER BY schema_name, table_name, object_name;',
    '    IF @@ROWCOUNT = 0 BREAK;',
    "    IF EXISTS (SELECT 1 FROM sys.foreign_keys AS fk WHERE fk.name = @key AND fk.parent_object_id = OBJECT_ID(QUOTENAME(@schema) + N'.' + QUOTENAME(@table)) AND fk.is_disabled = 0 AND fk.is_not_trusted = 1)",
    '    BEGIN',
    "      SET @sql = N'ALTER TABLE ' + QUOTENAME(@schema) + N'.' + QUOTENAME(@table) + N' WITH CHECK CHECK CONSTRAINT ' + QUOTENAME(@key) + N';';",
    '      EXEC sys.sp_executesql @sql;',
    '    END;',
    '    DELETE FROM dbo.airlift_untrusted WHERE schema_name = @schema AND table_name = @table AND object_name = @key;',
    '  END;',
    'END;',
  ].join('\n'),
  params: {},
};

/**
 * Removes the change log and the held table once the held objects are given back (`releaseStatement`
 * first) and the capture triggers dropped; `dropGate` also removes the gate and cursors (no fence kept).
 */
export function dropCaptureTablesStatement(dropGate: boolean): Statement {
  const tables = ['airlift_changes', 'airlift_held', 'airlift_untrusted', ...(dropGate ? ['airlift_cursors', 'airlift_gate'] : [])];
  return { sql: tables.map((t) => `IF OBJECT_ID(N'dbo.${t}', N'U') IS NOT NULL DROP TABLE dbo.${t};`).join('\n'), params: {} };
}
