// Change capture for SQLite: a change log and, on every user table, triggers that record the key of
// each changed row in the writer's own transaction and refuse the write while the gate is closed.
// The applier marks its own transaction (a row in `airlift_applying` that it deletes before commit;
// SQLite has one writer at a time, so no other transaction ever sees it) and is neither captured nor
// refused. The tenant's own triggers are held aside while a side is not open, so that changes
// applied there do not fire them again (their effects arrive as changes of their own).
import type Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { MAX_CAPTURED_KEY_COLUMNS, type TableInfo } from './engine';
import { quoteDoubled as q } from './identifiers';


/** The change log's key columns, k0…k7 (as many as a key has). */
export const keyColumns = (n: number = MAX_CAPTURED_KEY_COLUMNS): string => Array.from({ length: n }, (_, i) => `k${i}`).join(', ');

export const CAPTURE_SCHEMA = `
CREATE TABLE IF NOT EXISTS airlift_changes (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT NOT NULL,
  ${keyColumns()});
CREATE TABLE IF NOT EXISTS airlift_applying (id INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS airlift_held_triggers (name TEXT PRIMARY KEY, tbl TEXT NOT NULL, sql TEXT NOT NULL);
`;


/** Capture triggers are named by a hash of their table, so any table name gives a valid, unique name. */
function triggerName(table: string, what: string): string {
  return `airlift_capture_${createHash('sha256').update(table).digest('hex').slice(0, 16)}_${what}`;
}

const isCaptureTrigger = (name: string) => name.startsWith('airlift_capture_');

/** The key of a row as the trigger sees it: the primary key, or the rowid of a table without one. */
function keyOf(table: TableInfo, row: 'NEW' | 'OLD'): string[] {
  return table.keyKind === 'rowid' ? [`${row}.rowid`] : table.key.map((k) => `${row}.${q(k)}`);
}

/** The database's own clock, in milliseconds since the epoch: what a fence's lease is measured by. */
export const NOW_MS = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";
/** A fence whose lease ran out: writers take the side as open. */
export const LAPSED = `(state = 'fenced' AND expires_at IS NOT NULL AND expires_at <= ${NOW_MS})`;
const REFUSE = `SELECT RAISE(ABORT, 'airlift: writes to this database are fenced (its write gate is closed); reload the route and retry') WHERE EXISTS (SELECT 1 FROM airlift_gate WHERE id = 1 AND state <> 'open' AND NOT ${LAPSED});`;

/** `text` as an SQL string literal. */
const sqlText = (text: string) => `'${text.replace(/'/g, "''")}'`;

/**
 * SQLite lets a primary key column of a rowid table hold NULL (unless it is the INTEGER PRIMARY KEY
 * or declared NOT NULL), and any number of rows may hold it: the change log would record them all as
 * one key. Such a write is refused while the database migrates (preflight refuses a table that holds
 * one already). An AFTER trigger sees the INTEGER PRIMARY KEY assigned, and a NOT NULL column never
 * NULL, so the check is on every key column and refuses only what the quirk lets through.
 */
function refuseNullKey(table: TableInfo): string {
  if (table.keyKind !== 'primary-key') return '';
  return table.key
    .map((k) => `SELECT RAISE(ABORT, ${sqlText(`airlift: table ${q(table.name)} column ${q(k)}: a NULL primary key is refused while this database migrates (rows with a NULL key cannot be told apart); give the row a key`)}) WHERE NEW.${q(k)} IS NULL;`)
    .join(' ');
}
const NOT_APPLYING = 'NOT EXISTS (SELECT 1 FROM airlift_applying)';

/**
 * The statements that install capture on one table. `uniques`: the column lists of its unique
 * indexes besides the primary key. A write with REPLACE conflict handling deletes the rows that hold
 * its unique values without firing delete triggers (unless the writer turned recursive_triggers on),
 * so the keys of those rows are recorded before the write.
 */
export function captureTriggers(table: TableInfo, uniques: string[][] = []): string[] {
  if (table.key.length > MAX_CAPTURED_KEY_COLUMNS) throw new Error(`table ${table.name}: a key of ${table.key.length} columns is more than change capture holds (${MAX_CAPTURED_KEY_COLUMNS})`);
  const t = q(table.name);
  const literal = sqlText(table.name);
  const record = (row: 'NEW' | 'OLD') => `INSERT INTO airlift_changes (tbl, ${keyColumns(table.key.length)}) VALUES (${literal}, ${keyOf(table, row).join(', ')});`;
  const keyChanged = keyOf(table, 'OLD').map((old, i) => `${old} IS NOT ${keyOf(table, 'NEW')[i]}`).join(' OR ');
  return [
    `CREATE TRIGGER IF NOT EXISTS ${q(triggerName(table.name, 'ins'))} AFTER INSERT ON ${t} WHEN ${NOT_APPLYING} BEGIN ${REFUSE} ${refuseNullKey(table)} ${record('NEW')} END`,
    `CREATE TRIGGER IF NOT EXISTS ${q(triggerName(table.name, 'upd'))} AFTER UPDATE ON ${t} WHEN ${NOT_APPLYING} BEGIN ${REFUSE} ${refuseNullKey(table)} ${record('NEW')} END`,
    `CREATE TRIGGER IF NOT EXISTS ${q(triggerName(table.name, 'updk'))} AFTER UPDATE ON ${t} WHEN ${NOT_APPLYING} AND (${keyChanged}) BEGIN ${record('OLD')} END`,
    `CREATE TRIGGER IF NOT EXISTS ${q(triggerName(table.name, 'del'))} AFTER DELETE ON ${t} WHEN ${NOT_APPLYING} BEGIN ${REFUSE} ${record('OLD')} END`,
    ...uniques.flatMap((columns, i) =>
      (['INSERT', 'UPDATE'] as const).map((op) => {
        const self = op === 'UPDATE' ? ` AND NOT (${keyOf(table, 'OLD').map((old, j) => `${plain(table)[j]} IS ${old}`).join(' AND ')})` : '';
        const holders = `SELECT ${literal}, ${plain(table).join(', ')} FROM ${t} WHERE ${columns.map((c) => `${q(c)} = NEW.${q(c)}`).join(' AND ')}${self}`;
        return `CREATE TRIGGER IF NOT EXISTS ${q(triggerName(table.name, `u${i}${op === 'INSERT' ? 'i' : 'u'}`))} BEFORE ${op} ON ${t} WHEN ${NOT_APPLYING} BEGIN INSERT INTO airlift_changes (tbl, ${keyColumns(table.key.length)}) ${holders}; END`;
      }),
    ),
  ];
}

/** The key columns as a query of the table names them. */
function plain(table: TableInfo): string[] {
  return table.keyKind === 'rowid' ? ['_rowid_'] : table.key.map(q);
}

/** The column lists of a table's unique indexes other than its primary key (expression indexes aside). */
export function uniqueIndexes(db: Database.Database, table: string): string[][] {
  const indexes = db.prepare("SELECT name FROM pragma_index_list(?) WHERE \"unique\" = 1 AND origin <> 'pk'").pluck().all(table) as string[];
  return indexes
    .map((index) => db.prepare('SELECT name FROM pragma_index_info(?) ORDER BY seqno').pluck().all(index) as (string | null)[])
    .filter((columns): columns is string[] => columns.every((c) => c !== null));
}

/** The name a `CREATE TRIGGER IF NOT EXISTS "…"` statement of `captureTriggers` creates. */
export function triggerNameIn(sql: string): string {
  return /^CREATE TRIGGER IF NOT EXISTS "((?:[^"]|"")*)"/.exec(sql)![1].replace(/""/g, '"');
}

/** Installs the change log and every table's triggers, in the caller's transaction. */
export function installCapture(db: Database.Database, tables: TableInfo[]): void {
  db.exec(CAPTURE_SCHEMA);
  for (const table of tables) for (const sql of captureTriggers(table, uniqueIndexes(db, table.name))) db.exec(sql);
}

/**
 * Removes the capture triggers and the change log, and gives back the tenant's held triggers. With
 * `keepFence`, each table keeps one trigger that refuses writes while the gate is closed.
 */
export function removeCapture(db: Database.Database, tables: TableInfo[], keepFence: boolean): void {
  const ours = (db.prepare("SELECT name FROM sqlite_schema WHERE type = 'trigger'").all() as { name: string }[]).map((r) => r.name).filter(isCaptureTrigger);
  for (const name of ours) db.exec(`DROP TRIGGER IF EXISTS ${q(name)}`);
  releaseTriggers(db);
  if (keepFence)
    for (const table of tables)
      for (const [op, what] of [['INSERT', 'ins'], ['UPDATE', 'upd'], ['DELETE', 'del']] as const)
        db.exec(`CREATE TRIGGER IF NOT EXISTS ${q(`${triggerName(table.name, what)}_fence`)} BEFORE ${op} ON ${q(table.name)} BEGIN ${REFUSE} END`);
  db.exec('DROP TABLE IF EXISTS airlift_changes; DROP TABLE IF EXISTS airlift_applying; DROP TABLE IF EXISTS airlift_held_triggers;');
}

/** Sets the tenant's own triggers aside (a side that is not open), in the caller's transaction. */
export function holdTriggers(db: Database.Database): void {
  db.exec(CAPTURE_SCHEMA);
  const theirs = db.prepare("SELECT name, tbl_name AS tbl, sql FROM sqlite_schema WHERE type = 'trigger' ORDER BY rowid").all() as { name: string; tbl: string; sql: string }[];
  const keep = db.prepare('INSERT INTO airlift_held_triggers (name, tbl, sql) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING');
  for (const t of theirs.filter((t) => !isCaptureTrigger(t.name))) {
    keep.run(t.name, t.tbl, t.sql);
    db.exec(`DROP TRIGGER ${q(t.name)}`);
  }
}

/** Gives the held triggers back, exactly as they were written, in the caller's transaction. */
export function releaseTriggers(db: Database.Database): void {
  const held = db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'airlift_held_triggers'").get();
  if (!held) return;
  for (const t of db.prepare('SELECT name, sql FROM airlift_held_triggers ORDER BY rowid').all() as { name: string; sql: string }[]) {
    if (!db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'trigger' AND name = ?").get(t.name)) db.exec(t.sql);
  }
  db.exec('DELETE FROM airlift_held_triggers');
}
