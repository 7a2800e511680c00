// Every T-SQL statement airlift sends to SQL Server, built in one place: identifiers validated and
// bracket-quoted, every value a parameter. `plan` prints these same statements.
import { checkDatabaseName, quoteBracketed as b } from './identifiers';
import { CONFLICT_ERROR, FENCED_ERROR } from './mssql-capture-sql';

export { CONFLICT_ERROR, FENCED_ERROR };

/** A statement and its parameters (name -> value); secrets among them are marked for redaction. */
export interface Statement {
  sql: string;
  params: Record<string, string | number | null>;
  secretParams?: string[];
  /**
   * Declared T-SQL types of parameters (e.g. `nvarchar(100)`, `decimal(18, 4)`): each is sent as
   * exactly that type (key ranges, change capture); one not named here is typed by the driver.
   */
  types?: Record<string, string>;
}

export interface MssqlColumn {
  name: string;
  /** The base system type: an alias type (CREATE TYPE price FROM money) is resolved to `money`. */
  type: string;
  /** sys.columns.max_length: bytes, -1 for varchar(max), nvarchar(max), varbinary(max) and xml. */
  maxLength?: number;
  precision?: number;
  scale?: number;
  nullable?: boolean;
  identity?: boolean;
  /** A CLR type (geography, geometry, hierarchyid, or a user's assembly type). */
  assembly?: boolean;
  /** A computed column: read (and hashed), never written by change capture. */
  computed?: boolean;
}

export interface MssqlTable {
  schema: string;
  name: string;
  columns: MssqlColumn[];
  /** The primary key, else the first unfiltered unique index; empty when the table has neither. */
  key: string[];
  keyKind?: 'primary-key' | 'unique-index';
}

const qualified = (t: { schema: string; name: string }) => `${b(t.schema)}.${b(t.name)}`;

/** BACKUP … COPY_ONLY, CHECKSUM to one or more stripe files; paths are parameters. */
export function backupStatement(database: string, files: string[], options: { compression: boolean; stats?: number }): Statement {
  if (!files.length) throw new Error('backup needs at least one file');
  const params: Statement['params'] = {};
  const disks = files.map((file, i) => {
    params[`disk${i}`] = file;
    return `DISK = @disk${i}`;
  });
  const withs = ['COPY_ONLY', 'CHECKSUM', 'FORMAT', 'INIT', `STATS = ${options.stats ?? 5}`, ...(options.compression ? ['COMPRESSION'] : [])];
  return { sql: `BACKUP DATABASE ${b(checkDatabaseName(database))} TO ${disks.join(', ')} WITH ${withs.join(', ')};`, params };
}

/**
 * Whether this server can write a compressed backup ("Backup compression (SQL Server)"): not on
 * Express or Web (SERVERPROPERTY('EngineEdition') says 2, Standard, for Web too, so the Edition
 * text decides), and on SQL Server 2008 (10.0) only in Enterprise (EngineEdition 3, which Developer
 * and Evaluation share); Standard gained it in 2008 R2 (10.50).
 */
export const compressionSupportedQuery: Statement = {
  sql: [
    "DECLARE @edition nvarchar(128) = CAST(SERVERPROPERTY('Edition') AS nvarchar(128)), @version nvarchar(128) = CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128));",
    'SELECT CAST(CASE',
    "  WHEN @edition LIKE N'Express%' OR @edition LIKE N'Web%' THEN 0",
    "  WHEN SERVERPROPERTY('EngineEdition') = 3 THEN 1",
    "  WHEN SERVERPROPERTY('EngineEdition') = 2 AND @version NOT LIKE N'10.0.%' THEN 1",
    '  ELSE 0 END AS bit) AS supported;',
  ].join('\n'),
  params: {},
};

/**
 * Progress of our BACKUP or RESTORE of one database, for the heartbeat. A RESTORE request runs in
 * the session's database (master), so its database_id does not name the database being restored:
 * the request is found by its own statement text, which starts with exactly what `backupStatement`
 * or `restoreFromUrlStatement` send (`@statement`), never any other restore on the instance.
 */
export function progressQuery(database: string, command: 'BACKUP' | 'RESTORE'): Statement {
  return {
    sql: [
      'SELECT TOP (1) r.percent_complete',
      'FROM sys.dm_exec_requests AS r CROSS APPLY sys.dm_exec_sql_text(r.sql_handle) AS t',
      'WHERE r.command = @command AND CHARINDEX(@statement, t.text) > 0',
      'ORDER BY r.start_time;',
    ].join('\n'),
    params: { command: `${command} DATABASE`, statement: `${command} DATABASE ${b(checkDatabaseName(database))} ` },
    types: { command: 'nvarchar(32)', statement: 'nvarchar(200)' },
  };
}

export function databaseExistsQuery(database: string): Statement {
  return {
    sql: 'SELECT DB_ID(@database) AS id, (SELECT SUM(CAST(size AS bigint)) * 8192 FROM sys.master_files WHERE database_id = DB_ID(@database)) AS size_bytes;',
    params: { database: checkDatabaseName(database) },
  };
}

/** Whether a database exists and its state (ONLINE, RESTORING, …). */
export function databaseStateQuery(database: string): Statement {
  return {
    sql: "SELECT DB_ID(@database) AS id, CAST(DATABASEPROPERTYEX(@database, 'Status') AS nvarchar(60)) AS state;",
    params: { database: checkDatabaseName(database) },
  };
}

/**
 * Tables, columns and keys of the database from the catalog views (run in that database). Each
 * column's type is its base system type: an alias type's own row in sys.types carries the base in
 * system_type_id, so TYPE_NAME(system_type_id) names it (CLR types keep their own name). The key is
 * the primary key, else the first unique index without a filter (a filtered one misses rows).
 */
function catalogQuery(database?: string): Statement {
  // In the database's own connection the catalog views are unqualified; from master, three-part.
  const db = database ? `${b(checkDatabaseName(database))}.` : '';
  return {
    sql: [
      'SELECT s.name AS schema_name, t.name AS table_name, c.name AS column_name, c.column_id,',
      '       CASE WHEN ty.is_user_defined = 1 AND ty.is_assembly_type = 0 THEN TYPE_NAME(ty.system_type_id) ELSE ty.name END AS type_name,',
      '       c.max_length, c.precision, c.scale, c.is_nullable, c.is_identity, c.is_computed, ty.is_assembly_type,',
      '       ic.key_ordinal, ki.is_primary_key AS key_is_primary',
      `FROM ${db}sys.tables AS t`,
      `JOIN ${db}sys.schemas AS s ON s.schema_id = t.schema_id`,
      `JOIN ${db}sys.columns AS c ON c.object_id = t.object_id`,
      `JOIN ${db}sys.types AS ty ON ty.user_type_id = c.user_type_id`,
      `OUTER APPLY (SELECT TOP (1) i.index_id, i.is_primary_key FROM ${db}sys.indexes AS i`,
      '             WHERE i.object_id = t.object_id AND (i.is_primary_key = 1 OR (i.is_unique = 1 AND i.has_filter = 0 AND i.type IN (1, 2)))',
      '             ORDER BY i.is_primary_key DESC, i.index_id) AS ki',
      `LEFT JOIN ${db}sys.index_columns AS ic ON ic.object_id = t.object_id AND ic.index_id = ki.index_id AND ic.column_id = c.column_id AND ic.key_ordinal > 0`,
      "WHERE t.is_ms_shipped = 0 AND t.name NOT LIKE N'airlift[_]%'",
      'ORDER BY s.name, t.name, c.column_id;',
    ].join('\n'),
    params: {},
  };
}

/**
 * `listTablesQuery(database?)` builds the statement; `listTablesQuery.sql` / `.params` are the
 * unqualified one (run in the database's own connection), as callers that took it as a constant read it.
 */
export const listTablesQuery: ((database?: string) => Statement) & Statement = Object.assign(catalogQuery, catalogQuery());

/** A row of `listTablesQuery`. */
export interface CatalogColumnRow {
  schema_name: string; table_name: string; column_name: string; type_name: string; max_length: number; precision: number; scale: number;
  is_nullable: boolean; is_identity: boolean; is_assembly_type: boolean; key_ordinal: number | null; key_is_primary: boolean | null;
  /** Optional only for hand-written catalogs in tests; the query always returns it. */
  is_computed?: boolean;
}

/** Tables as the catalog describes them, keyed `table` for dbo and `schema.table` otherwise. */
export function tablesFromCatalog(rows: CatalogColumnRow[]): Map<string, MssqlTable> {
  const tables = new Map<string, MssqlTable & { ordinals: Map<string, number> }>();
  for (const r of rows) {
    const id = r.schema_name === 'dbo' ? r.table_name : `${r.schema_name}.${r.table_name}`;
    const t = tables.get(id) ?? { schema: r.schema_name, name: r.table_name, columns: [] as MssqlColumn[], key: [] as string[], ordinals: new Map<string, number>() };
    t.columns.push({
      name: r.column_name, type: r.type_name, maxLength: r.max_length, precision: r.precision, scale: r.scale,
      nullable: Boolean(r.is_nullable), identity: Boolean(r.is_identity), assembly: Boolean(r.is_assembly_type), computed: Boolean(r.is_computed),
    });
    if (r.key_ordinal) {
      t.ordinals.set(r.column_name, r.key_ordinal);
      t.keyKind = r.key_is_primary ? 'primary-key' : 'unique-index';
    }
    tables.set(id, t);
  }
  return new Map([...tables].map(([id, t]) => [id, { schema: t.schema, name: t.name, columns: t.columns, key: [...t.ordinals].sort((x, y) => x[1] - y[1]).map(([c]) => c), keyKind: t.keyKind }]));
}

/**
 * airlift's capture triggers in a tenant database and the tables they sit on, for `captureGaps`
 * (a table created, renamed or rebuilt since capture was installed lacks its trigger).
 */
export const captureTriggersQuery: Statement = {
  sql: [
    'SELECT OBJECT_SCHEMA_NAME(tr.parent_id) AS schema_name, OBJECT_NAME(tr.parent_id) AS table_name, tr.name AS trigger_name',
    "FROM sys.triggers AS tr WHERE tr.parent_class = 1 AND tr.name LIKE N'airlift[_]capture[_]%';",
  ].join('\n'),
  params: {},
};

/**
 * airlift's gate tables in a tenant database, created if missing: the applied cursors (one per stream
 * `<migrationId>:<origin>`) and the one-row write gate, its id pinned to 1. The change log and the
 * held objects come with change capture (mssql-capture-sql.ts).
 */
export const gateSchema: Statement = {
  sql: [
    "IF OBJECT_ID(N'dbo.airlift_cursors', N'U') IS NULL",
    '  CREATE TABLE dbo.airlift_cursors (stream nvarchar(128) NOT NULL PRIMARY KEY, cursor_seq bigint NOT NULL);',
    "IF OBJECT_ID(N'dbo.airlift_gate', N'U') IS NULL",
    "  CREATE TABLE dbo.airlift_gate (id int NOT NULL PRIMARY KEY CHECK (id = 1), state nvarchar(16) NOT NULL CHECK (state IN (N'open', N'fenced', N'standby')), migration_id nvarchar(64) NULL, token nvarchar(128) NULL, updated_at datetime2 NOT NULL);",
  ].join('\n'),
  params: {},
};

/** The parameter that carries a tracking column's value in `writeEventStatement`. */
export function eventParam(column: string, index: number): string {
  return /^[A-Za-z_][A-Za-z0-9_]{0,100}$/.test(column) ? `v_${column}` : `v${index}`;
}

/**
 * The tracking write, as the gateway sends it and as an application that writes its own events may
 * send it: one event, stored unless its event_id is already there, refused while the write gate is
 * not open. Change capture, when installed, records it like any other write (its trigger checks the
 * gate too); this statement checks the gate itself so a database without capture is fenced as well.
 *  1. XACT_ABORT ON, so a THROW or any run-time error rolls the whole transaction back and releases
 *     its locks (THROW alone ends the batch but leaves the transaction open).
 *  2. READ COMMITTED, so the locking hints below read current rows even in a SNAPSHOT session.
 *  3. The gate read WITH (UPDLOCK, HOLDLOCK): it reads the committed row (not a statement snapshot,
 *     which under READ_COMMITTED_SNAPSHOT would miss a fence committed a moment ago) and holds the
 *     lock to commit, so `setWriteGate` waits for this writer, and a writer after it sees the fence.
 *  4. The event, unless its event_id is there.
 * Parameters: one per column but the IDENTITY one (`eventParam`).
 */
export function writeEventStatement(trackingTable: MssqlTable): Statement {
  const t = qualified(trackingTable);
  const columns = trackingTable.columns.map((c, i) => ({ ...c, param: eventParam(c.name, i) })).filter((c) => !c.identity);
  const eventId = columns.find((c) => c.name === 'event_id');
  if (!eventId) throw new Error(`tracking table ${trackingTable.schema}.${trackingTable.name} has no event_id column`);
  const params: Statement['params'] = {};
  for (const c of columns) params[c.param] = null;
  return {
    sql: [
      'SET XACT_ABORT ON;',
      'SET TRANSACTION ISOLATION LEVEL READ COMMITTED;',
      'BEGIN TRANSACTION;',
      'DECLARE @airlift_state nvarchar(16), @airlift_migration nvarchar(64), @airlift_message nvarchar(2048), @airlift_inserted int;',
      "IF OBJECT_ID(N'dbo.airlift_gate', N'U') IS NOT NULL",
      '  SELECT @airlift_state = state, @airlift_migration = migration_id FROM dbo.airlift_gate WITH (UPDLOCK, HOLDLOCK) WHERE id = 1;',
      "IF @airlift_state IS NOT NULL AND @airlift_state <> N'open'",
      'BEGIN',
      "  SET @airlift_message = CONCAT(N'airlift_fenced: tenant database ', DB_NAME(), N' is ', @airlift_state, N' (migration ', ISNULL(@airlift_migration, N'unknown'), N'); reload the route and retry');",
      `  THROW ${FENCED_ERROR}, @airlift_message, 1;`,
      'END;',
      `INSERT INTO ${t} (${columns.map((c) => b(c.name)).join(', ')}) SELECT ${columns.map((c) => `@${c.param}`).join(', ')}`,
      `  WHERE NOT EXISTS (SELECT 1 FROM ${t} WITH (UPDLOCK, HOLDLOCK) WHERE [event_id] = @${eventId.param});`,
      'SET @airlift_inserted = @@ROWCOUNT;',
      'COMMIT TRANSACTION;',
      'SELECT @airlift_inserted AS inserted;',
    ].join('\n'),
    params,
  };
}

/** The applied cursor of one stream (`<migrationId>:<origin>`). */
export const appliedCursorQuery: Statement = {
  sql: "IF OBJECT_ID(N'dbo.airlift_cursors', N'U') IS NOT NULL SELECT cursor_seq FROM dbo.airlift_cursors WHERE stream = @stream;",
  params: {},
  types: { stream: 'nvarchar(128)' },
};

export const advanceCursorStatement: Statement = {
  sql: [
    'UPDATE dbo.airlift_cursors SET cursor_seq = CASE WHEN cursor_seq > @cursor THEN cursor_seq ELSE @cursor END WHERE stream = @stream;',
    'IF @@ROWCOUNT = 0 INSERT INTO dbo.airlift_cursors (stream, cursor_seq) VALUES (@stream, @cursor);',
  ].join('\n'),
  params: {},
  types: { stream: 'nvarchar(128)', cursor: 'bigint' },
};

/** The write gate's one row, or none (no gate yet: open); reads only, so a database never migrated is left as it is. */
export const readGateQuery: Statement = {
  sql: "IF OBJECT_ID(N'dbo.airlift_gate', N'U') IS NOT NULL SELECT state, migration_id, token FROM dbo.airlift_gate WHERE id = 1;",
  params: {},
};

/** The gate row under an update lock held to commit: a compare-and-set reads it first (writers' shared locks still pass). */
export const lockGateQuery: Statement = { sql: 'SELECT state, migration_id, token FROM dbo.airlift_gate WITH (UPDLOCK, HOLDLOCK) WHERE id = 1;', params: {} };

/**
 * Sets the write gate's one row. Its UPDATE (or, first time, INSERT under a key-range lock) waits for
 * every tracking write that holds the gate row's update lock, i.e. every writer that read the old
 * state, so once this commits none of them can commit any more.
 */
export const setGateStatement: Statement = {
  sql: [
    'SET XACT_ABORT ON;',
    'BEGIN TRANSACTION;',
    'DECLARE @current nvarchar(16), @current_token nvarchar(128), @applied bit = 0;',
    'SELECT @current = state, @current_token = token FROM dbo.airlift_gate WITH (UPDLOCK, HOLDLOCK) WHERE id = 1;',
    // Compare-and-set: `@expectStates` lists the states it may change from (`none`: no row yet).
    "IF (@expectStates IS NULL OR CHARINDEX(N',' + ISNULL(@current, N'none') + N',', @expectStates) > 0)",
    '   AND (@expectToken IS NULL OR @current_token = @expectToken)',
    'BEGIN',
    '  UPDATE dbo.airlift_gate SET state = @state, migration_id = @migration, token = @token, updated_at = SYSUTCDATETIME() WHERE id = 1;',
    '  IF @@ROWCOUNT = 0 INSERT INTO dbo.airlift_gate (id, state, migration_id, token, updated_at) VALUES (1, @state, @migration, @token, SYSUTCDATETIME());',
    '  SET @applied = 1;',
    'END',
    'COMMIT TRANSACTION;',
    'SELECT @applied AS applied;',
  ].join('\n'),
  params: {},
};

/** SQL Server target: a credential for the container, holding the SAS, never in the text itself. */
export function createCredentialStatement(containerUrl: string): Statement {
  return {
    sql: [
      'DECLARE @sql nvarchar(max) = CASE WHEN EXISTS (SELECT 1 FROM sys.credentials WHERE name = @url) THEN N\'ALTER\' ELSE N\'CREATE\' END',
      "  + N' CREDENTIAL ' + QUOTENAME(@url) + N' WITH IDENTITY = N''SHARED ACCESS SIGNATURE'', SECRET = N''' + REPLACE(@sas, N'''', N'''''') + N''';';",
      'EXEC sys.sp_executesql @sql;',
    ].join('\n'),
    params: { url: containerUrl, sas: null },
    secretParams: ['sas'],
  };
}

export function fileListStatement(): Statement {
  return { sql: 'RESTORE FILELISTONLY FROM URL = @url;', params: {} };
}

export const defaultPathsQuery: Statement = {
  sql: "SELECT CAST(SERVERPROPERTY('InstanceDefaultDataPath') AS nvarchar(4000)) AS data_path, CAST(SERVERPROPERTY('InstanceDefaultLogPath') AS nvarchar(4000)) AS log_path;",
  params: {},
};

/** RESTORE … FROM URL with each file moved to the target's default folders. */
export function restoreFromUrlStatement(database: string, files: { logicalName: string; type: 'D' | 'L' | string }[]): Statement {
  const params: Statement['params'] = {};
  const moves = files.map((f, i) => {
    params[`logical${i}`] = f.logicalName;
    params[`physical${i}`] = null; // filled with the default data/log path at run time
    return `MOVE @logical${i} TO @physical${i}`;
  });
  const withs = [...moves, 'CHECKSUM', 'STATS = 5'];
  return { sql: `RESTORE DATABASE ${b(checkDatabaseName(database))} FROM URL = @url WITH ${withs.join(', ')};`, params };
}

/**
 * The name a SQL Server target is restored under before it gets its own: the name itself records
 * which migration made it (a name taken by nothing but airlift), from the moment RESTORE creates it, so a crash at any point leaves a
 * database that migration (and only it) recognises and may drop.
 */
export function restoringName(migrationId: string): string {
  // One migration restores one tenant database, so the migration id alone makes the name unique.
  return checkDatabaseName(`${RESTORING_PREFIX}${migrationId}`, 'migration id');
}

export const RESTORING_PREFIX = 'airlift_restoring_';

/** Marks a database as created by one migration; only that migration may drop it. */
export function markCreatedStatement(database: string): Statement {
  return { sql: `EXEC ${b(checkDatabaseName(database))}.sys.sp_addextendedproperty @name = N'airlift_migration', @value = @migration;`, params: {} };
}

export function createdByQuery(database: string): Statement {
  return { sql: `SELECT CAST(value AS nvarchar(64)) AS migration FROM ${b(checkDatabaseName(database))}.sys.extended_properties WHERE class = 0 AND name = N'airlift_migration';`, params: {} };
}

/** Gives a restored (and marked) database its own name; nobody else may be connected to it. */
export function renameDatabaseStatement(from: string, to: string): Statement {
  return { sql: `ALTER DATABASE ${b(checkDatabaseName(from))} MODIFY NAME = ${b(checkDatabaseName(to))};`, params: {} };
}

/**
 * Drops a database: an online one after closing its sessions, one left RESTORING by an interrupted
 * RESTORE as it is (ALTER DATABASE is not allowed on a database that is restoring).
 */
export function dropDatabaseStatement(database: string): Statement {
  const db = b(checkDatabaseName(database));
  return {
    sql: [
      "IF CAST(DATABASEPROPERTYEX(@database, 'Status') AS nvarchar(60)) = N'ONLINE'",
      `  ALTER DATABASE ${db} SET SINGLE_USER WITH ROLLBACK IMMEDIATE;`,
      `DROP DATABASE ${db};`,
    ].join('\n'),
    params: { database: checkDatabaseName(database) },
  };
}

/** A statement as a person reads it in `plan`: the text, then each parameter, secrets redacted. */
export function renderStatement(s: Statement, values: Record<string, string | number | null> = {}): string {
  const all = { ...Object.fromEntries(Object.keys(s.types ?? {}).map((k) => [k, null])), ...s.params, ...values };
  const lines = Object.entries(all).map(([k, v]) => `--   @${k}${s.types?.[k] ? ` ${s.types[k]}` : ''} = ${s.secretParams?.includes(k) ? '[redacted]' : v === null ? '(set at run time)' : JSON.stringify(v)}`);
  return lines.length ? `${s.sql}\n${lines.join('\n')}` : s.sql;
}
