// Verification's row hashes on SQL Server, tested by exactly what is sent: the T-SQL text (hostile
// identifiers included) and the declared type of every key parameter. No SQL Server runs here; each
// test names the Microsoft documentation rule it encodes. The live suite (mssql-live.test.ts) runs the
// same statements on a real server when AIRLIFT_MSSQL_URL is set.
import sql from 'mssql';
import * as rowHash from '../../engines/mssql-row-hash';
import type { MssqlColumn, MssqlTable } from '../../engines/mssql-sql';
import { bindParameters, sqlTypeOf } from '../../engines/mssql';
import { agreedDigestFormat } from '../../engines/engine';

// mssql's own declaration builder: what sp_executesql receives as the parameter list.
const { declare } = require('mssql/lib/datatypes') as { declare: (type: unknown, options: object) => string };

const SQL2008 = rowHash.hashDialect(10);
const SQL2014 = rowHash.hashDialect(12);
const SQL2016 = rowHash.hashDialect(13);
const MI = rowHash.hashDialect(rowHash.NEWEST_LEVEL);

const col = (name: string, type: string, more: Partial<MssqlColumn> = {}): MssqlColumn => ({ name, type, nullable: false, ...more });
const table = (columns: MssqlColumn[], key: string[], more: Partial<MssqlTable> = {}): MssqlTable => ({ schema: 'sales]; DROP TABLE x --', name: "o'rders", columns, key, keyKind: 'primary-key', ...more });

/** The text outside [bracketed] identifiers and 'string literals': where an injection would show. */
const outsideQuotes = (text: string) => text.replace(/\[(?:[^\]]|\]\])*\]/g, '[]').replace(/N?'(?:[^']|'')*'/g, "''");

describe('which HASHBYTES: chosen by the older server of the pair, the same text on both sides (issue 8 item 6)', () => {
  test('the server level comes from ProductVersion, and Azure SQL (EngineEdition 5, 8) counts as the newest', () => {
    // SERVERPROPERTY: ProductVersion is "major.minor.build.revision"; Azure SQL Database and Managed
    // Instance report 12.0.2000.8 there whatever engine they run, and EngineEdition 5 / 8.
    expect(rowHash.serverLevel({ product_version: '10.50.6000.34', engine_edition: 3 })).toBe(10);
    expect(rowHash.serverLevel({ product_version: '12.0.6024.0', engine_edition: 2 })).toBe(12);
    expect(rowHash.serverLevel({ product_version: '12.0.2000.8', engine_edition: 8 })).toBe(rowHash.NEWEST_LEVEL);
    expect(rowHash.serverLevel({ product_version: '16.0.4135.4', engine_edition: 3 })).toBe(16);
    expect(rowHash.serverLevelQuery.sql).not.toContain('ProductMajorVersion'); // not on 2008 / 2008 R2
  });

  test('HASHBYTES: SHA2_256 from 2012, SHA1 on 2008 and 2008 R2; the 8000-byte input limit through 2014', () => {
    // HASHBYTES (2008 docs): <algorithm> ::= MD2 | MD4 | MD5 | SHA | SHA1. From 2012: SHA2_256, SHA2_512.
    // "Allowed input values are limited to 8000 bytes" (2012 and 2014 docs); 2016 and later: no limit.
    expect(SQL2008).toEqual({ algorithm: 'SHA1', inputLimit: 8000 });
    expect(rowHash.hashDialect(11)).toEqual({ algorithm: 'SHA2_256', inputLimit: 8000 });
    expect(SQL2014).toEqual({ algorithm: 'SHA2_256', inputLimit: 8000 });
    expect(SQL2016).toEqual({ algorithm: 'SHA2_256', inputLimit: null });
  });

  test('a 2014 source and a Managed Instance agree on the 2014 expression, and both send identical text', () => {
    const format = agreedDigestFormat({ family: 'mssql', level: 12 }, { family: 'mssql', level: rowHash.NEWEST_LEVEL });
    expect(format).toEqual({ family: 'mssql', level: 12 });
    const t = table([col('id', 'int'), col('notes', 'nvarchar', { maxLength: -1, nullable: true })], ['id']);
    const source = rowHash.rowHashQuery(t, { lower: true, upper: true }, rowHash.hashDialect(format!.level));
    const target = rowHash.rowHashQuery(t, { lower: true, upper: true }, rowHash.hashDialect(format!.level));
    expect(source).toEqual(target);
    expect(agreedDigestFormat({ family: 'mssql', level: 12 }, { family: 'sqlite', level: 3 })).toBeUndefined();
  });

  test('no CONCAT anywhere (2012 and later only): tokens are joined with +, which 2008 has', () => {
    // CONCAT (Transact-SQL): "Applies to SQL Server 2012 (11.x) and later".
    const t = table([col('id', 'int'), col('name', 'varchar', { maxLength: 20, nullable: true })], ['id']);
    for (const d of [SQL2008, SQL2014, SQL2016]) expect(rowHash.rowHashQuery(t, { lower: true, upper: true }, d).sql).not.toMatch(/CONCAT\s*\(/i);
  });
});

describe('rows over 8000 bytes on SQL Server 2014 and older are hashed in pieces (issue 8 item 6)', () => {
  const t = table([col('id', 'int'), col('body', 'nvarchar', { maxLength: -1, nullable: true })], ['id']);

  test('a max column is hashed as bytes in 8000-byte pieces whose hashes are hashed together', () => {
    const { sql: text } = rowHash.rowHashQuery(t, { lower: false, upper: false }, SQL2014);
    // SUBSTRING counts characters on nvarchar: the value goes to varbinary(max) first so pieces are bytes.
    expect(text).toContain('CROSS APPLY (SELECT CAST(src.[body] AS varbinary(max)) AS [v1]) AS airlift_long');
    expect(text).toContain("CASE WHEN DATALENGTH(airlift_long.[v1]) > 0 THEN HASHBYTES('SHA2_256', SUBSTRING(airlift_long.[v1], 1, 8000)) ELSE 0x END");
    expect(text).toContain("CASE WHEN DATALENGTH(airlift_long.[v1]) > 8000 THEN HASHBYTES('SHA2_256', SUBSTRING(airlift_long.[v1], 8001, 8000)) ELSE 0x END");
    // 250 piece hashes of 32 bytes make one 8000-byte input: the last piece starts at 249 * 8000 + 1.
    expect(text).toContain('SUBSTRING(airlift_long.[v1], 1992001, 8000)');
    expect(text).not.toContain('SUBSTRING(airlift_long.[v1], 2000001');
  });

  test('a value longer than the pieces can cover stops the query with a named error, never a partial hash', () => {
    const { sql: text } = rowHash.rowHashQuery(t, { lower: false, upper: false }, SQL2014);
    expect(text).toContain(`WHEN DATALENGTH(airlift_long.[v1]) > 2000000 THEN CAST(CAST(N'${rowHash.TOO_LONG_MARK}: column #1 holds ' + CAST(DATALENGTH(airlift_long.[v1]) AS nvarchar(20))`);
  });

  test('SHA1 on 2008: 20-byte hashes, 400 pieces per input', () => {
    const { sql: text } = rowHash.rowHashQuery(t, { lower: false, upper: false }, SQL2008);
    expect(text).not.toContain('SHA2_256');
    expect(text).toContain('CAST(0x00 AS binary(20))');
    expect(text).toContain('SUBSTRING(airlift_long.[v1], 3192001, 8000)');
  });

  test('from 2016 the value is hashed whole: no pieces, no CROSS APPLY', () => {
    const { sql: text } = rowHash.rowHashQuery(t, { lower: false, upper: false }, MI);
    expect(text).not.toContain('airlift_long');
    expect(text).toContain("ISNULL(HASHBYTES('SHA2_256', src.[body]), CAST(0x00 AS binary(32)))");
  });

  test('a table too wide for one 8000-byte input of column hashes is hashed in groups first', () => {
    const wide = table(Array.from({ length: 300 }, (_, i) => col(`c${i}`, 'int')), ['c0']);
    const { sql: text } = rowHash.rowHashQuery(wide, { lower: false, upper: false }, SQL2014);
    // 250 tokens of 32 bytes per group: 300 columns make two groups under one outer HASHBYTES.
    expect(text.match(/HASHBYTES\('SHA2_256', ISNULL/g)).toHaveLength(2);
    expect(rowHash.rowHashQuery(wide, { lower: false, upper: false }, MI).sql.match(/HASHBYTES\('SHA2_256', ISNULL/g)).toHaveLength(1);
  });
});

describe('each value is hashed by bytes that keep it exact (issue 8 items 7 and 8)', () => {
  const encoded = (c: MssqlColumn) => rowHash.encodeColumn(c, '[v]');

  test('float and real as their exact bytes, not CONVERT style 3', () => {
    // CAST and CONVERT, float and real styles: style 3 ("always 17 digits, lossless") applies to
    // SQL Server 2016 and later; the default keeps 6 digits, so a 2014 source would differ from MI.
    expect(encoded(col('v', 'float'))).toBe('CAST([v] AS binary(8))');
    expect(encoded(col('v', 'real'))).toBe('CAST([v] AS binary(4))');
  });

  test('money and smallmoney with all four decimals (style 2, not the default 0)', () => {
    // CAST and CONVERT, money and smallmoney styles: 0 = "no commas, two digits after the decimal
    // point"; 2 = "four digits after the decimal point".
    expect(encoded(col('v', 'money'))).toBe('CONVERT(varchar(30), [v], 2)');
    expect(encoded(col('v', 'smallmoney'))).toBe('CONVERT(varchar(30), [v], 2)');
  });

  test('datetime keeps milliseconds (style 121); the new date and time types keep their whole scale', () => {
    // CAST and CONVERT, date and time styles: 0 / 100 is "mon dd yyyy hh:miAM" (no seconds); 121 is
    // ODBC canonical with milliseconds. datetime2 / time / datetimeoffset convert by default with every
    // fractional digit of their scale.
    expect(encoded(col('v', 'datetime'))).toBe('CONVERT(varchar(23), [v], 121)');
    expect(encoded(col('v', 'smalldatetime'))).toBe('CONVERT(varchar(19), [v], 120)');
    expect(encoded(col('v', 'datetime2', { scale: 7 }))).toBe('CAST([v] AS varchar(40))');
  });

  test('sql_variant carries its base type, precision, scale and collation, and its value by base type', () => {
    // SQL_VARIANT_PROPERTY: BaseType, Precision, Scale, Collation; converting a variant straight to
    // text would make float 1e0 and int 1 and varchar '1' equal.
    const text = encoded(col('v', 'sql_variant'));
    for (const property of ['BaseType', 'Precision', 'Scale', 'Collation']) expect(text).toContain(`SQL_VARIANT_PROPERTY([v], '${property}')`);
    expect(text).toContain("WHEN N'float' THEN CAST(CAST([v] AS float) AS varbinary(8))");
    expect(text).toContain("WHEN N'money' THEN CAST(CONVERT(varchar(30), CAST([v] AS money), 2) AS varbinary(30))");
  });

  test('geography and geometry keep the SRID and Z/M: STSrid plus the serialized bytes', () => {
    // geography methods: STAsBinary "does not carry any Z or M values"; the CLR serialization keeps
    // them and the SRID. STSrid is prefixed so two shapes with different SRIDs never hash alike.
    expect(encoded(col('v', 'geography', { assembly: true }))).toBe("CAST(CAST([v].STSrid AS varchar(11)) + ':' AS varbinary(12)) + CAST([v] AS varbinary(max))");
    expect(encoded(col('v', 'geometry', { assembly: true }))).toContain('[v].STSrid');
  });

  test('text, ntext and image become max types: HASHBYTES takes varchar, nvarchar or varbinary only', () => {
    expect(encoded(col('v', 'text'))).toBe('CAST([v] AS varchar(max))');
    expect(encoded(col('v', 'ntext'))).toBe('CAST([v] AS nvarchar(max))');
    expect(encoded(col('v', 'image'))).toBe('CAST([v] AS varbinary(max))');
  });

  test('an alias type is hashed as its base type (the catalog query resolves it)', () => {
    // sys.types: an alias type's system_type_id is its base type; TYPE_NAME(system_type_id) names it.
    // CAST and CONVERT: "Alias data types can't be used" as a target, so the base type is what counts.
    const { listTablesQuery } = jest.requireActual('../../engines/mssql-sql') as typeof import('../../engines/mssql-sql');
    expect(listTablesQuery().sql).toContain('CASE WHEN ty.is_user_defined = 1 AND ty.is_assembly_type = 0 THEN TYPE_NAME(ty.system_type_id) ELSE ty.name END AS type_name');
    // So a `price` alias of money arrives as money and keeps four decimals.
    expect(encoded(col('v', 'money'))).toContain(', 2)');
  });

  test('rowversion is left out of the hash: each database stamps its own value on every write', () => {
    // rowversion (Transact-SQL): "Each database has a counter that is incremented for each insert or
    // update operation"; a row replicated to the target gets the target's value.
    const t = table([col('id', 'int'), col('rv', 'timestamp'), col('name', 'nvarchar', { maxLength: 40 })], ['id']);
    const { sql: text } = rowHash.rowHashQuery(t, { lower: false, upper: false }, MI);
    expect(text).not.toContain('[rv]');
    expect(text).toContain('src.[name]');
  });

  test('NULL and the empty string hash differently: NULL is a run of zero bytes as long as a hash', () => {
    const t = table([col('id', 'int'), col('name', 'nvarchar', { maxLength: 40, nullable: true })], ['id']);
    expect(rowHash.rowHashQuery(t, { lower: false, upper: false }, MI).sql).toContain("ISNULL(HASHBYTES('SHA2_256', src.[name]), CAST(0x00 AS binary(32)))");
  });
});

describe('key-range parameters are declared with the column\'s exact type (issue 8 item 9)', () => {
  const sent = (c: MssqlColumn) => {
    const t = table([c, col('x', 'int')], [c.name]);
    const statement = rowHash.rowHashQuery(t, { lower: true, upper: false }, MI);
    return statement;
  };
  /** What sp_executesql is told about each parameter, as mssql builds its declaration. */
  const declaration = (type: string) => {
    const request = bindParameters(new sql.Request(), { sql: '', params: { p: null }, types: { p: type } });
    const p = request.parameters.p as unknown as { type: unknown; length?: number; precision?: number; scale?: number };
    return declare(p.type, p);
  };

  test('a varchar key is sent as varchar(n), not nvarchar: no conversion of the column, same collation order', () => {
    // Data type precedence: nvarchar ranks above varchar, so an nvarchar parameter converts the
    // varchar column (an index scan) and compares with Unicode rules, which under a SQL_* collation
    // order differently from the column's own ORDER BY: boundary rows would land in the next chunk.
    const s = sent(col('code', 'varchar', { maxLength: 20 }));
    expect(s.types).toEqual({ page: 'int', lo0: 'varchar(20)' });
    expect(declaration('varchar(20)')).toBe('varchar (20)');
    expect(declaration(sent(col('code', 'nvarchar', { maxLength: 40 })).types!.lo0)).toBe('nvarchar (20)');
    expect(declaration(sent(col('code', 'char', { maxLength: 3 })).types!.lo0)).toBe('char (3)');
  });

  test('datetime2 and time keep 100 ns: the value travels as text into a variable of the exact type', () => {
    // datetime2 (Transact-SQL): fractional seconds precision 0 to 7 (100 ns); a JavaScript Date
    // keeps milliseconds, so the key goes as text and the server converts it.
    const s = sent(col('at', 'datetime2', { scale: 7 }));
    expect(s.types).toEqual({ page: 'int', lo0_text: 'varchar(64)' });
    expect(s.sql.split('\n')[0]).toBe('DECLARE @lo0 datetime2(7) = CAST(@lo0_text AS datetime2(7));');
    expect(s.sql).toContain('SELECT TOP (@page) CAST(src.[at] AS varchar(64)) AS [k0]');
    expect(sent(col('t', 'time', { scale: 3 })).sql.split('\n')[0]).toBe('DECLARE @lo0 time(3) = CAST(@lo0_text AS time(3));');
  });

  test('datetime keys travel in style 121, which SET DATEFORMAT does not reinterpret', () => {
    // SET DATEFORMAT affects yyyy-mm-dd strings converted to datetime; an explicit style does not.
    expect(sent(col('at', 'datetime')).sql.split('\n')[0]).toBe('DECLARE @lo0 datetime = CONVERT(datetime, @lo0_text, 121);');
  });

  test('decimal keys keep precision and scale (never a JavaScript float)', () => {
    const s = sent(col('amount', 'decimal', { precision: 38, scale: 10 }));
    expect(s.sql.split('\n')[0]).toBe('DECLARE @lo0 decimal(38, 10) = CAST(@lo0_text AS decimal(38, 10));');
    expect(sent(col('m', 'money')).sql.split('\n')[0]).toBe('DECLARE @lo0 money = CAST(@lo0_text AS money);');
  });

  test('other keys are declared as their own type', () => {
    expect(sent(col('id', 'bigint')).types!.lo0).toBe('bigint');
    expect(sent(col('g', 'uniqueidentifier')).types!.lo0).toBe('uniqueidentifier');
    expect(sent(col('f', 'float')).types!.lo0).toBe('float');
    expect(declaration('decimal(38, 10)')).toBe('decimal (38, 10)');
    expect(declaration('datetime2(7)')).toBe('datetime2 (7)');
    expect(declaration('varbinary(max)')).toBe('varbinary (MAX)');
    expect(() => sqlTypeOf('varchar(20); DROP TABLE x')).toThrow(/cannot declare/);
  });
});

describe('verification pages by key (issue 8 item 10)', () => {
  test('every row-hash query is TOP (@page), ordered by the key, starting after the last key seen', () => {
    const t = table([col('id', 'int'), col('name', 'nvarchar', { maxLength: 40 })], ['id']);
    const { sql: text, types } = rowHash.rowHashQuery(t, { lower: true, upper: true }, MI);
    expect(text).toMatch(/^SELECT TOP \(@page\) /);
    expect(text).toMatch(/ORDER BY src\.\[id\];$/);
    expect(text).toContain('WHERE ((src.[id] > @lo0))\n  AND ((src.[id] <= @hi0))');
    expect(types!.page).toBe('int');
  });
});

describe('tables without a primary key (issue 8 item 11)', () => {
  const heap = table(
    [col('a', 'int', { nullable: true }), col('doc', 'xml', { maxLength: -1, nullable: true }), col('shape', 'geography', { assembly: true, nullable: true }), col('b', 'varchar', { maxLength: 10, nullable: true })],
    [],
    { keyKind: undefined },
  );

  test('the key is every orderable column, then the row hash: xml, text, image, spatial and hierarchyid never order', () => {
    // Comparison operators: xml, text, ntext, image and the CLR types cannot be compared or ordered.
    expect(rowHash.verificationKey(heap)).toEqual({ columns: ['a', 'b', rowHash.ROW_HASH_KEY], kind: 'all-columns' });
    for (const type of ['xml', 'text', 'ntext', 'image', 'geography', 'geometry', 'hierarchyid', 'sql_variant', 'timestamp'])
      expect(rowHash.orderable(col('x', type))).toBe(false);
  });

  test('identical rows count as copies of one entry, so a page boundary never splits them', () => {
    const { sql: text } = rowHash.rowHashQuery(heap, { lower: true, upper: false }, MI);
    expect(text).toContain('COUNT_BIG(*) AS [copies]');
    expect(text).toContain('GROUP BY r.[k0], r.[k1], r.[row_hash]');
    expect(text).toContain('ORDER BY r.[k0], r.[k1], r.[row_hash];');
    expect(text).not.toMatch(/ORDER BY[^;]*\[doc\]/);
  });

  test('range predicates are NULL-safe: NULL sorts first, so a row whose key is NULL is inside a range', () => {
    // ORDER BY Clause: "NULL values are treated as the lowest possible values". Without the IS NULL
    // terms, `a > @lo0` is UNKNOWN for a NULL a and the row belongs to no chunk.
    const { sql: text } = rowHash.rowHashQuery(heap, { lower: true, upper: true }, MI);
    expect(text).toContain('(r.[k0] > @lo0 OR (r.[k0] IS NOT NULL AND @lo0 IS NULL))');
    expect(text).toContain('(r.[k0] = @lo0 OR (r.[k0] IS NULL AND @lo0 IS NULL))');
    expect(text).toContain('(r.[k0] < @hi0 OR (r.[k0] IS NULL AND @hi0 IS NOT NULL))');
    // The row hash is never NULL and orders last.
    expect(text).toContain('r.[row_hash] > @lo2');
  });

  test('a key from a unique index (no primary key) keeps plain predicates for its NOT NULL columns', () => {
    const t = table([col('code', 'varchar', { maxLength: 8 }), col('n', 'int', { nullable: true })], ['code', 'n'], { keyKind: 'unique-index' });
    const { sql: text } = rowHash.rowHashQuery(t, { lower: true, upper: false }, MI);
    expect(text).toContain('(src.[code] > @lo0) OR (src.[code] = @lo0 AND (src.[n] > @lo1 OR (src.[n] IS NOT NULL AND @lo1 IS NULL)))');
    expect(rowHash.verificationKey(t).kind).toBe('unique-index');
  });
});

describe('hostile identifiers stay inside brackets', () => {
  test('schema, table and column names from the catalog cannot escape', () => {
    const t = table([col("id]; DROP TABLE y --", 'int'), col("n'ame", 'nvarchar', { maxLength: -1 }), col('Café_名前', 'sql_variant')], ["id]; DROP TABLE y --"]);
    for (const d of [SQL2008, SQL2014, MI]) {
      const { sql: text } = rowHash.rowHashQuery(t, { lower: true, upper: true }, d);
      expect(text).toContain('FROM [sales]]; DROP TABLE x --].[o\'rders] AS src');
      expect(outsideQuotes(text)).not.toMatch(/DROP|Café|n'ame/);
    }
  });
});

test.each([
  ['SQL Server 2016 or later, composite key, every type', MI],
  ['SQL Server 2014, a max column hashed in pieces (first lines)', SQL2014],
])('row hash statement: %s', (_name, d) => {
  const t = table(
    [
      col('id', 'bigint'), col('code', 'varchar', { maxLength: 12 }), col('price', 'money'), col('ratio', 'float', { nullable: true }), col('at', 'datetime2', { scale: 7 }),
      col('tag', 'sql_variant', { nullable: true }), col('place', 'geography', { assembly: true, nullable: true }), col('rv', 'timestamp'),
      ...(d === SQL2014 ? [col('body', 'nvarchar', { maxLength: -1, nullable: true })] : []),
    ],
    ['id', 'code'],
  );
  const { sql: text, types } = rowHash.rowHashQuery(t, { lower: true, upper: true }, d);
  // The 250 piece terms are pinned by the tests above; the snapshot keeps the statement's shape readable.
  const lines = text.split('\n').filter((l) => !/^\s+\+ CASE WHEN DATALENGTH/.test(l));
  expect({ sql: lines.join('\n'), types }).toMatchSnapshot();
});
