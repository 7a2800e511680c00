// Row hashes for verification, computed by SQL Server itself, key-ordered and paged by key. Both
// sides of a comparison must send the same expression, chosen by the older of the two servers
// (`hashDialect`): what HASHBYTES accepts changed in 2012 (SHA2_256) and 2016 (no 8000-byte limit).
// Each rule below names the Microsoft documentation it follows; tests/engines/mssql-row-hash.test.ts
// pins the text sent.
import { quoteBracketed as b } from './identifiers';
import type { MssqlColumn, MssqlTable, Statement } from './mssql-sql';

/** Which HASHBYTES a comparison uses. */
export interface HashDialect {
  /** HASHBYTES: SHA2_256 exists from SQL Server 2012 (11.x); 2008 and 2008 R2 know MD2 … SHA1 only. */
  algorithm: 'SHA2_256' | 'SHA1';
  /** HASHBYTES: "allowed input values are limited to 8000 bytes" up to SQL Server 2014 (12.x); none from 2016 (13.x). */
  inputLimit: number | null;
}

/** SQL Server's major version (10 = 2008 / 2008 R2, 12 = 2014, 13 = 2016, 16 = 2022); Azure SQL counts as the newest. */
export const NEWEST_LEVEL = 99;

export function hashDialect(level: number): HashDialect {
  return { algorithm: level >= 11 ? 'SHA2_256' : 'SHA1', inputLimit: level >= 13 ? null : 8000 };
}

export const hashBytes = (d: HashDialect): number => (d.algorithm === 'SHA2_256' ? 32 : 20);

/**
 * What the server reports about itself. SERVERPROPERTY('ProductVersion') reads 12.0.2000.8 on Azure
 * SQL Database and Managed Instance whatever their engine, so EngineEdition decides there (5: SQL
 * Database, 8: Managed Instance; both run the newest engine). ProductMajorVersion does not exist
 * before 2012, so the major version is parsed from ProductVersion.
 */
export const serverLevelQuery: Statement = {
  sql: "SELECT CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128)) AS product_version, CAST(SERVERPROPERTY('EngineEdition') AS int) AS engine_edition, CAST(SERVERPROPERTY('Edition') AS nvarchar(128)) AS edition;",
  params: {},
};

export function serverLevel(row: { product_version: string | null; engine_edition: number | null }): number {
  if (row.engine_edition === 5 || row.engine_edition === 8) return NEWEST_LEVEL;
  const major = Number(String(row.product_version ?? '').split('.')[0]);
  if (!Number.isInteger(major) || major < 9) throw new Error(`unrecognised SQL Server ProductVersion ${JSON.stringify(row.product_version)}`);
  return major;
}

const lower = (c: MssqlColumn) => c.type.toLowerCase();

/**
 * Columns left out of the row hash. rowversion (timestamp) is a database-wide counter that the
 * server sets on every insert and update ("rowversion (Transact-SQL)": "the value changes each time
 * a row is modified"): a row replicated by the dual-write gets the target's next value, so hashing it
 * would fail every replicated row although the data is the same.
 */
export const excludedFromHash = (c: MssqlColumn): boolean => ['timestamp', 'rowversion'].includes(lower(c));

/** Types that cannot order a key: no comparison operators ("Comparison operators"; xml, text, ntext, image, CLR types) or no stable one. */
const UNORDERABLE = new Set(['xml', 'text', 'ntext', 'image', 'geography', 'geometry', 'hierarchyid', 'sql_variant', 'timestamp', 'rowversion']);
export const orderable = (c: MssqlColumn): boolean => !UNORDERABLE.has(lower(c)) && !c.assembly;

/** Whether a value of this column can exceed 8000 bytes (max types, LOBs, xml, spatial, CLR types). */
function mayBeLong(c: MssqlColumn): boolean {
  const type = lower(c);
  if (['text', 'ntext', 'image', 'xml', 'geography', 'geometry'].includes(type)) return true;
  if (['varchar', 'nvarchar', 'varbinary'].includes(type)) return c.maxLength === -1;
  return Boolean(c.assembly) && type !== 'hierarchyid';
}

/**
 * One column as bytes that differ whenever the value differs, the same on every version:
 * - float and real as their exact bytes (CAST AS binary(8) / binary(4)): CONVERT style 3, the only
 *   lossless text, exists from 2016 only, and the default text keeps 6 digits ("CAST and CONVERT",
 *   float and real styles).
 * - money and smallmoney with style 2, all four decimals (style 0, the default, keeps two).
 * - datetime with style 121 (yyyy-mm-dd hh:mi:ss.mmm) and smalldatetime with style 120: the default
 *   (style 0) drops seconds. date, time, datetime2 and datetimeoffset convert by default to
 *   yyyy-mm-dd hh:mi:ss.nnnnnnn [+hh:mm], every digit of their scale.
 * - sql_variant with its base type, precision, scale and collation (SQL_VARIANT_PROPERTY), then its
 *   value encoded by that base type (float stays exact, money keeps four decimals).
 * - geography and geometry as their serialized bytes (which hold the SRID and any Z and M values;
 *   STAsBinary drops Z and M), prefixed with STSrid so the SRID is visible in the text.
 * - integers, bit and decimal/numeric as their exact decimal text; uniqueidentifier as char(36).
 * - text, ntext and image as varchar(max), nvarchar(max) and varbinary(max): HASHBYTES takes only
 *   varchar, nvarchar and varbinary.
 */
export function encodeColumn(c: MssqlColumn, ref = `src.${b(c.name)}`): string {
  switch (lower(c)) {
    case 'char': case 'varchar': case 'nchar': case 'nvarchar': case 'sysname': case 'binary': case 'varbinary':
      return ref;
    case 'text': return `CAST(${ref} AS varchar(max))`;
    case 'ntext': return `CAST(${ref} AS nvarchar(max))`;
    case 'image': return `CAST(${ref} AS varbinary(max))`;
    case 'float': return `CAST(${ref} AS binary(8))`;
    case 'real': return `CAST(${ref} AS binary(4))`;
    case 'money': case 'smallmoney': return `CONVERT(varchar(30), ${ref}, 2)`;
    case 'datetime': return `CONVERT(varchar(23), ${ref}, 121)`;
    case 'smalldatetime': return `CONVERT(varchar(19), ${ref}, 120)`;
    case 'date': case 'time': case 'datetime2': case 'datetimeoffset': return `CAST(${ref} AS varchar(40))`;
    case 'tinyint': case 'smallint': case 'int': case 'bigint': case 'bit': case 'decimal': case 'numeric':
      return `CAST(${ref} AS varchar(50))`;
    case 'uniqueidentifier': return `CAST(${ref} AS char(36))`;
    case 'xml': return `CAST(${ref} AS nvarchar(max))`;
    case 'sql_variant': return variantEncoding(ref);
    case 'geography': case 'geometry':
      return `CAST(CAST(${ref}.STSrid AS varchar(11)) + ':' AS varbinary(12)) + CAST(${ref} AS varbinary(max))`;
    case 'hierarchyid': return `CAST(${ref} AS varbinary(892))`;
    default:
      // Any other CLR type: its serialized bytes.
      return `CAST(${ref} AS varbinary(max))`;
  }
}

/**
 * A sql_variant as `<BaseType>(<Precision>,<Scale>,<Collation>):` then its value by base type.
 * SQL_VARIANT_PROPERTY gives each property as sql_variant, so each is CAST to text first; a variant
 * holds at most 8016 bytes, so its value fits varbinary(8000).
 */
function variantEncoding(ref: string): string {
  const prop = (name: string) => `ISNULL(CAST(SQL_VARIANT_PROPERTY(${ref}, '${name}') AS nvarchar(128)), N'')`;
  const base = `CAST(SQL_VARIANT_PROPERTY(${ref}, 'BaseType') AS nvarchar(128))`;
  const header = `CAST(${prop('BaseType')} + N'(' + ${prop('Precision')} + N',' + ${prop('Scale')} + N',' + ${prop('Collation')} + N'):' AS varbinary(600))`;
  const value = [
    `CASE ${base}`,
    `WHEN N'float' THEN CAST(CAST(${ref} AS float) AS varbinary(8))`,
    `WHEN N'real' THEN CAST(CAST(${ref} AS real) AS varbinary(4))`,
    `WHEN N'money' THEN CAST(CONVERT(varchar(30), CAST(${ref} AS money), 2) AS varbinary(30))`,
    `WHEN N'smallmoney' THEN CAST(CONVERT(varchar(30), CAST(${ref} AS smallmoney), 2) AS varbinary(30))`,
    `WHEN N'datetime' THEN CAST(CONVERT(varchar(23), CAST(${ref} AS datetime), 121) AS varbinary(23))`,
    `WHEN N'smalldatetime' THEN CAST(CONVERT(varchar(19), CAST(${ref} AS smalldatetime), 120) AS varbinary(19))`,
    `WHEN N'binary' THEN CAST(${ref} AS varbinary(8000))`,
    `WHEN N'varbinary' THEN CAST(${ref} AS varbinary(8000))`,
    `ELSE CAST(CAST(${ref} AS nvarchar(4000)) AS varbinary(8000)) END`,
  ].join(' ');
  return `${header} + ${value}`;
}

/** The error a value too long for piecewise hashing raises: a conversion error that carries this text. */
export const TOO_LONG_MARK = 'airlift_value_too_long';

/**
 * One column's hash. NULL is a run of zero bytes as long as a hash, so NULL and '' differ and every
 * column's token has the same length. Under an input limit, a value that may be long is hashed in
 * pieces of `inputLimit` bytes (its bytes, via varbinary(max), so SUBSTRING counts bytes, not
 * characters), and the piece hashes are hashed together; a value with more pieces than fit one
 * HASHBYTES input stops the query with an error naming the column, never a silent partial hash.
 */
function columnHash(c: MssqlColumn, ordinal: number, d: HashDialect, long: string | null): string {
  const nul = `CAST(0x00 AS binary(${hashBytes(d)}))`;
  if (!long) return `ISNULL(HASHBYTES('${d.algorithm}', ${encodeColumn(c)}), ${nul})`;
  const limit = d.inputLimit!;
  const pieces = Math.floor(limit / hashBytes(d));
  const piece = (i: number) => `CASE WHEN DATALENGTH(${long}) > ${i * limit} THEN HASHBYTES('${d.algorithm}', SUBSTRING(${long}, ${i * limit + 1}, ${limit})) ELSE 0x END`;
  const tooLong = `CAST(CAST(N'${TOO_LONG_MARK}: column #${ordinal} holds ' + CAST(DATALENGTH(${long}) AS nvarchar(20)) + N' bytes, more than ${pieces * limit} that HASHBYTES can take in pieces before SQL Server 2016' AS int) AS varbinary(${hashBytes(d)}))`;
  return [
    `CASE WHEN ${long} IS NULL THEN ${nul}`,
    `WHEN DATALENGTH(${long}) > ${pieces * limit} THEN ${tooLong}`,
    `ELSE HASHBYTES('${d.algorithm}', ${Array.from({ length: pieces }, (_, i) => piece(i)).join('\n  + ')}) END`,
  ].join('\n ');
}

/** The alias of the CROSS APPLY that names each long value once, so its pieces reuse it. */
const LONG = 'airlift_long';

/** The row hash expression and the CROSS APPLY it needs (legacy servers with long columns). */
export function rowHashExpression(table: MssqlTable, d: HashDialect): { hash: string; apply: string } {
  const columns = table.columns.filter((c) => !excludedFromHash(c));
  const applied: string[] = [];
  const tokens = columns.map((c, i) => {
    if (!d.inputLimit || !mayBeLong(c)) return columnHash(c, i, d, null);
    applied.push(`CAST(${encodeColumn(c)} AS varbinary(max)) AS [v${i}]`);
    return columnHash(c, i, d, `${LONG}.[v${i}]`);
  });
  // Under a limit, the tokens of one HASHBYTES input must fit it: wide tables hash groups first.
  const perInput = d.inputLimit ? Math.floor(d.inputLimit / hashBytes(d)) : Infinity;
  const hashOf = (parts: string[]) => `HASHBYTES('${d.algorithm}', ${parts.length ? parts.join('\n + ') : '0x'})`;
  let hash: string;
  if (tokens.length <= perInput) hash = hashOf(tokens);
  else {
    const groups: string[] = [];
    for (let i = 0; i < tokens.length; i += perInput) groups.push(hashOf(tokens.slice(i, i + perInput)));
    hash = hashOf(groups);
  }
  return { hash, apply: applied.length ? ` CROSS APPLY (SELECT ${applied.join(', ')}) AS ${LONG}` : '' };
}

/** The pseudo key column that orders and tells apart the rows of a table without a unique key. */
export const ROW_HASH_KEY = '(row hash)';

/** How a key column travels as a parameter: its exact type, or exact text converted by the server. */
interface KeyWire {
  /** The key as selected (text for types the driver would round: decimal, money, dates and times). */
  select: (ref: string) => string;
  /** The declared type of the parameter sent. */
  wireType: string;
  /** For text on the wire: the variable's exact type and how the server converts the text. */
  declare?: { type: string; from: (param: string) => string };
}

/** The exact SQL type of a column, as a parameter or a variable is declared. */
export function declaredType(c: MssqlColumn): string {
  const type = lower(c) === 'sysname' ? 'nvarchar' : lower(c);
  const len = c.maxLength ?? -1;
  switch (type) {
    case 'varchar': case 'char': case 'varbinary': case 'binary':
      return `${type}(${len === -1 ? 'max' : len})`;
    case 'nvarchar': case 'nchar':
      return `${type}(${len === -1 ? 'max' : len / 2})`;
    case 'decimal': case 'numeric':
      return `${type}(${c.precision ?? 18}, ${c.scale ?? 0})`;
    case 'datetime2': case 'time': case 'datetimeoffset':
      return `${type}(${c.scale ?? 7})`;
    default:
      return type;
  }
}

/**
 * Key values the driver cannot carry exactly go as text and are converted back by the server into a
 * variable of the column's exact type: decimal and numeric (the driver sends a JavaScript number),
 * money (four decimals), and date and time types (a JavaScript Date keeps milliseconds, datetime2
 * and time keep 100 ns). datetime travels in style 121, which DATEFORMAT does not reinterpret; the
 * newer date types convert from their default text, which is ISO 8601 and never reinterpreted.
 */
function keyWire(c: MssqlColumn): KeyWire {
  const type = declaredType(c);
  const text = (select: (ref: string) => string, from: (p: string) => string): KeyWire => ({ select, wireType: 'varchar(64)', declare: { type, from } });
  switch (lower(c)) {
    case 'decimal': case 'numeric': return text((r) => `CAST(${r} AS varchar(64))`, (p) => `CAST(${p} AS ${type})`);
    case 'money': case 'smallmoney': return text((r) => `CONVERT(varchar(64), ${r}, 2)`, (p) => `CAST(${p} AS ${type})`);
    case 'datetime': return text((r) => `CONVERT(varchar(64), ${r}, 121)`, (p) => `CONVERT(datetime, ${p}, 121)`);
    case 'smalldatetime': return text((r) => `CONVERT(varchar(64), ${r}, 120)`, (p) => `CONVERT(smalldatetime, ${p}, 120)`);
    case 'date': case 'time': case 'datetime2': case 'datetimeoffset':
      return text((r) => `CAST(${r} AS varchar(64))`, (p) => `CAST(${p} AS ${type})`);
    default:
      return { select: (r) => r, wireType: type };
  }
}

export interface HashedKey {
  /** Column names, or ROW_HASH_KEY last for a table without a unique key. */
  columns: string[];
  kind: 'primary-key' | 'unique-index' | 'all-columns';
}

/** The key verification orders by: the table's own, or every orderable column plus the row hash. */
export function verificationKey(table: MssqlTable): HashedKey {
  if (table.key.length) return { columns: table.key, kind: table.keyKind === 'unique-index' ? 'unique-index' : 'primary-key' };
  return { columns: [...table.columns.filter(orderable).map((c) => c.name), ROW_HASH_KEY], kind: 'all-columns' };
}

interface KeyPart {
  ref: string;
  nullable: boolean;
  wire: KeyWire;
}

/**
 * The lexicographic range predicate on a composite key (T-SQL has no row-value comparison), NULL-safe:
 * ORDER BY puts NULL first ("ORDER BY Clause": NULL values are treated as the lowest possible
 * values), so for a nullable column NULL is below every value and equal to NULL. Without this a row
 * whose key holds NULL falls outside every range and shows as missing.
 */
function rangePredicate(parts: KeyPart[], prefix: 'lo' | 'hi'): string {
  const p = (i: number) => `@${prefix}${i}`;
  const eq = (k: KeyPart, v: string) => (k.nullable ? `(${k.ref} = ${v} OR (${k.ref} IS NULL AND ${v} IS NULL))` : `${k.ref} = ${v}`);
  const gt = (k: KeyPart, v: string) => (k.nullable ? `(${k.ref} > ${v} OR (${k.ref} IS NOT NULL AND ${v} IS NULL))` : `${k.ref} > ${v}`);
  const lt = (k: KeyPart, v: string) => (k.nullable ? `(${k.ref} < ${v} OR (${k.ref} IS NULL AND ${v} IS NOT NULL))` : `${k.ref} < ${v}`);
  return parts
    .map((k, i) => {
      const equal = parts.slice(0, i).map((e, j) => eq(e, p(j)));
      const last = i === parts.length - 1;
      const cmp = prefix === 'lo' ? gt(k, p(i)) : last ? (k.nullable ? `(${lt(k, p(i))} OR ${eq(k, p(i))})` : `${k.ref} <= ${p(i)}`) : lt(k, p(i));
      return `(${[...equal, cmp].join(' AND ')})`;
    })
    .join(' OR ');
}

/**
 * One page of row hashes: at most `@page` rows after `@lo…` (when `lower`) and up to `@hi…` (when
 * `upper`), in key order, each with its key (`k0`, `k1`, …), `row_hash` and `copies`. A table
 * without a unique key is grouped by every orderable column and the row hash, so identical rows
 * count as copies of one entry and the page boundary never splits them.
 */
export function rowHashQuery(table: MssqlTable, range: { lower: boolean; upper: boolean }, d: HashDialect): Statement & { types: Record<string, string> } {
  const key = verificationKey(table);
  const { hash, apply } = rowHashExpression(table, d);
  const byName = new Map(table.columns.map((c) => [c.name, c]));
  const heap = key.kind === 'all-columns';
  const parts: KeyPart[] = key.columns.map((name, i) => {
    if (name === ROW_HASH_KEY) return { ref: 'r.[row_hash]', nullable: false, wire: { select: (r) => r, wireType: `varbinary(${hashBytes(d)})` } };
    const c = byName.get(name)!;
    return { ref: heap ? `r.[k${i}]` : `src.${b(name)}`, nullable: c.nullable ?? false, wire: keyWire(c) };
  });
  const types: Record<string, string> = { page: 'int' };
  const declares: string[] = [];
  const params: Statement['params'] = { page: null };
  for (const [prefix, on] of [['lo', range.lower], ['hi', range.upper]] as const) {
    if (!on) continue;
    parts.forEach((k, i) => {
      const name = `${prefix}${i}`;
      if (k.wire.declare) {
        types[`${name}_text`] = k.wire.wireType;
        params[`${name}_text`] = null;
        declares.push(`DECLARE @${name} ${k.wire.declare.type} = ${k.wire.declare.from(`@${name}_text`)};`);
      } else {
        types[name] = k.wire.wireType;
        params[name] = null;
      }
    });
  }
  const where = [range.lower ? `(${rangePredicate(parts, 'lo')})` : '', range.upper ? `(${rangePredicate(parts, 'hi')})` : ''].filter(Boolean);
  const whereSql = where.length ? `\nWHERE ${where.join('\n  AND ')}` : '';
  const order = parts.map((k) => k.ref).join(', ');
  const selectKeys = parts.map((k, i) => (k.ref === 'r.[row_hash]' ? null : `${k.wire.select(k.ref)} AS [k${i}]`)).filter(Boolean).join(', ');
  let sql: string;
  if (!heap) {
    sql = `SELECT TOP (@page) ${selectKeys}, ${hash} AS [row_hash], CAST(1 AS bigint) AS [copies]\nFROM ${b(table.schema)}.${b(table.name)} AS src${apply}${whereSql}\nORDER BY ${order};`;
  } else {
    const inner = parts.filter((k) => k.ref !== 'r.[row_hash]').map((k, i) => `src.${b(key.columns[i])} AS [k${i}]`);
    sql = [
      `SELECT TOP (@page) ${selectKeys}${selectKeys ? ', ' : ''}r.[row_hash], COUNT_BIG(*) AS [copies]`,
      `FROM (SELECT ${[...inner, `${hash} AS [row_hash]`].join(', ')}`,
      `  FROM ${b(table.schema)}.${b(table.name)} AS src${apply}) AS r${whereSql}`,
      `GROUP BY ${order}`,
      `ORDER BY ${order};`,
    ].join('\n');
  }
  return { sql: [...declares, sql].join('\n'), params, types };
}

/** The key values of one page row as they go back as the next page's `@lo…` (text or exact value). */
export function keyParams(table: MssqlTable, d: HashDialect, prefix: 'lo' | 'hi', values: unknown[]): Record<string, unknown> {
  const statement = rowHashQuery(table, { lower: prefix === 'lo', upper: prefix === 'hi' }, d);
  const out: Record<string, unknown> = {};
  values.forEach((v, i) => {
    const name = `${prefix}${i}`;
    out[`${name}_text` in statement.types ? `${name}_text` : name] = v;
  });
  return out;
}
