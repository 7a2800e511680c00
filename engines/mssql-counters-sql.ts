// The key counters of a SQL Server database, read and raised under the cut-over's fence (issue 20,
// defect 11): replication copies rows, not counters, so an IDENTITY value or a SEQUENCE value the old
// primary issued for a row that never reached the new one (inserted and deleted before it was
// copied, or issued and rolled back) would be issued again there. Documentation each statement follows:
//  - "IDENT_CURRENT (Transact-SQL)": the last identity value generated for a table, in any session
//    and any scope (learn.microsoft.com/sql/t-sql/functions/ident-current-transact-sql).
//  - "sys.identity_columns (Transact-SQL)": last_value is NULL when no row was ever inserted
//    (learn.microsoft.com/sql/relational-databases/system-catalog-views/sys-identity-columns-transact-sql).
//  - "DBCC CHECKIDENT (Transact-SQL)" (learn.microsoft.com/sql/t-sql/database-console-commands/dbcc-checkident-transact-sql):
//    RESEED, new_reseed_value sets the current identity value; "If no rows have been inserted into the
//    table since it was created, or if all rows have been removed by using the TRUNCATE TABLE
//    statement, the first row inserted after you run DBCC CHECKIDENT uses new_reseed_value as the
//    identity. Otherwise, the next row inserted uses new_reseed_value + the current increment value";
//    it also sets a value LOWER than the current one, so the statement compares first and never lowers.
//  - "sys.sequences (Transact-SQL)": current_value, increment
//    (learn.microsoft.com/sql/relational-databases/system-catalog-views/sys-sequences-transact-sql).
//  - "ALTER SEQUENCE (Transact-SQL)": RESTART WITH <constant> is "the next value that will be returned
//    by the sequence object" (learn.microsoft.com/sql/t-sql/statements/alter-sequence-transact-sql);
//    a constant, so the statement is built in T-SQL from a bigint parameter, names by QUOTENAME.
// Only ascending counters (a positive increment) are carried; a descending one is left as it is.
import { quoteBracketed } from './identifiers';
import type { Statement } from './mssql-sql';

/** The key a SEQUENCE is carried under: `sequence:[schema].[name]` (a table's key is its table id). */
export const sequenceKey = (schema: string, name: string): string => `sequence:${quoteBracketed(schema)}.${quoteBracketed(name)}`;

/** The schema and name of a `sequenceKey`, or undefined for a table's key. */
export function parseSequenceKey(key: string): { schema: string; name: string } | undefined {
  const m = /^sequence:\[((?:[^\]]|\]\])+)\]\.\[((?:[^\]]|\]\])+)\]$/.exec(key);
  return m ? { schema: m[1].replace(/]]/g, ']'), name: m[2].replace(/]]/g, ']') } : undefined;
}

/**
 * Every ascending IDENTITY that has issued a value (IDENT_CURRENT) and every ascending SEQUENCE
 * (current_value), as decimal text (numeric(38,0) would lose digits as a JavaScript number).
 */
export const keyCountersQuery: Statement = {
  sql: [
    "SELECT N'identity' AS kind, s.name AS schema_name, t.name AS object_name,",
    '  CAST(CAST(IDENT_CURRENT(QUOTENAME(s.name) + N\'.\' + QUOTENAME(t.name)) AS decimal(38, 0)) AS nvarchar(40)) AS current_value',
    'FROM sys.identity_columns AS ic',
    'JOIN sys.tables AS t ON t.object_id = ic.object_id',
    'JOIN sys.schemas AS s ON s.schema_id = t.schema_id',
    "WHERE t.is_ms_shipped = 0 AND t.name NOT LIKE N'airlift[_]%' AND ic.last_value IS NOT NULL AND CAST(ic.increment_value AS decimal(38, 0)) > 0",
    'UNION ALL',
    "SELECT N'sequence', s.name, sq.name, CAST(CAST(sq.current_value AS decimal(38, 0)) AS nvarchar(40))",
    'FROM sys.sequences AS sq',
    'JOIN sys.schemas AS s ON s.schema_id = sq.schema_id',
    'WHERE CAST(sq.increment AS decimal(38, 0)) > 0;',
  ].join('\n'),
  params: {},
};

/**
 * Raises one table's IDENTITY so that the next row it inserts gets a value above `@value`: RESEED to
 * `@value` when the table has issued values (the next is `@value` + increment), to `@value` +
 * increment when it never has (the next is the reseed value itself). Never lowers it. Selects `raised`.
 */
export const raiseIdentityStatement: Statement = {
  sql: [
    'DECLARE @table nvarchar(300) = QUOTENAME(@schema) + N\'.\' + QUOTENAME(@name);',
    'DECLARE @current bigint = CAST(IDENT_CURRENT(@table) AS bigint), @increment bigint = CAST(IDENT_INCR(@table) AS bigint);',
    'DECLARE @used bit = (SELECT CASE WHEN ic.last_value IS NULL THEN 0 ELSE 1 END FROM sys.identity_columns AS ic WHERE ic.object_id = OBJECT_ID(@table));',
    'DECLARE @reseed bigint = CASE WHEN @used = 1 THEN @value ELSE @value + @increment END;',
    'IF @current IS NOT NULL AND @increment > 0 AND ((@used = 1 AND @current < @value) OR (@used = 0 AND @current <= @value))',
    'BEGIN',
    '  DBCC CHECKIDENT (@table, RESEED, @reseed) WITH NO_INFOMSGS;',
    '  SELECT CAST(1 AS bit) AS raised;',
    'END',
    'ELSE SELECT CAST(0 AS bit) AS raised;',
  ].join('\n'),
  params: {},
  types: { schema: 'nvarchar(128)', name: 'nvarchar(128)', value: 'bigint' },
};

/**
 * Raises one SEQUENCE so that its next value is above `@value` (RESTART WITH `@value` + increment),
 * only when its current value is below `@value`. Selects `raised`.
 */
export const raiseSequenceStatement: Statement = {
  sql: [
    'DECLARE @sequence nvarchar(300) = QUOTENAME(@schema) + N\'.\' + QUOTENAME(@name);',
    'DECLARE @current bigint, @increment bigint;',
    "SELECT @current = CAST(sq.current_value AS bigint), @increment = CAST(sq.increment AS bigint) FROM sys.sequences AS sq WHERE sq.object_id = OBJECT_ID(@sequence, N'SO');",
    'IF @current IS NOT NULL AND @increment > 0 AND @current < @value',
    'BEGIN',
    "  DECLARE @sql nvarchar(max) = N'ALTER SEQUENCE ' + @sequence + N' RESTART WITH ' + CAST(@value + @increment AS nvarchar(40)) + N';';",
    '  EXEC sys.sp_executesql @sql;',
    '  SELECT CAST(1 AS bit) AS raised;',
    'END',
    'ELSE SELECT CAST(0 AS bit) AS raised;',
  ].join('\n'),
  params: {},
  types: { schema: 'nvarchar(128)', name: 'nvarchar(128)', value: 'bigint' },
};
