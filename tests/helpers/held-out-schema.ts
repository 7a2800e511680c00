// A tenant schema unlike the demo's, for change capture: quoted and unicode names, text and composite
// keys, WITHOUT ROWID, a table without a primary key, BLOBs, a unique column, and a trigger of the
// tenant's own. `writerScript` is a separate process that writes to every table until killed.
import Database from 'better-sqlite3';

export const CUSTOMERS = 'Kunden "Ä" 客户';

export const HELD_OUT_SCHEMA = `
CREATE TABLE "Kunden ""Ä"" 客户" ("Kunden-Nr" TEXT PRIMARY KEY, name TEXT NOT NULL, balance REAL, photo BLOB, email TEXT UNIQUE);
CREATE TABLE "order lines" (order_id INTEGER NOT NULL, line INTEGER NOT NULL, sku TEXT NOT NULL COLLATE NOCASE, qty INTEGER,
  PRIMARY KEY (order_id, line)) WITHOUT ROWID;
CREATE TABLE "text keyed" (code TEXT NOT NULL, region TEXT NOT NULL, v BLOB, PRIMARY KEY (region, code)) WITHOUT ROWID;
CREATE TABLE events_nopk (at TEXT, what TEXT, n REAL);
CREATE TABLE history (id INTEGER PRIMARY KEY AUTOINCREMENT, who TEXT, what TEXT);
CREATE INDEX "order lines by sku" ON "order lines" (sku);
CREATE TRIGGER "kunden audit" AFTER UPDATE OF name ON "Kunden ""Ä"" 客户"
BEGIN INSERT INTO history (who, what) VALUES (NEW."Kunden-Nr", 'renamed ' || OLD.name || ' -> ' || NEW.name); END;
`;

export function createHeldOutDatabase(file: string, rows = 200): void {
  const db = new Database(file);
  try {
    db.pragma('journal_mode = WAL');
    db.exec(HELD_OUT_SCHEMA);
    db.transaction(() => {
      for (let i = 0; i < rows; i++) {
        db.prepare(`INSERT INTO "Kunden ""Ä"" 客户" VALUES (?, ?, ?, ?, ?)`).run(`K-${i}-ü`, `Kunde ${i}`, i / 7, i % 3 ? Buffer.from([i % 256, 0, 255]) : null, `k${i}@example.com`);
        db.prepare('INSERT INTO "order lines" VALUES (?, ?, ?, ?)').run(Math.floor(i / 4), i % 4, `SKU-${i % 17}`, i);
        db.prepare('INSERT INTO "text keyed" VALUES (?, ?, ?)').run(`c${i}`, i % 2 ? 'eu' : 'アジア', Buffer.alloc(i % 50, i));
        db.prepare('INSERT INTO events_nopk VALUES (?, ?, ?)').run(`2026-11-${(i % 28) + 1}`, i % 5 ? 'view' : null, 0.1 + i * 0.2);
      }
    })();
  } finally {
    db.close();
  }
}

/** Every row of every table of the tenant (airlift's own tables aside), in key order. */
export function dumpRows(file: string): Record<string, unknown[][]> {
  const db = new Database(file, { readonly: true });
  db.defaultSafeIntegers(true);
  try {
    const tables = db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'airlift_%' ORDER BY name").pluck().all() as string[];
    return Object.fromEntries(
      tables.map((t) => {
        const q = `"${t.replace(/"/g, '""')}"`;
        const pk = db.prepare('SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk').pluck().all(t) as string[];
        const order = pk.length ? pk.map((c) => `"${c.replace(/"/g, '""')}"`).join(', ') : '_rowid_';
        return [t, db.prepare(`SELECT ${pk.length ? '' : '_rowid_, '}* FROM ${q} ORDER BY ${order}`).raw(true).all() as unknown[][]];
      }),
    );
  } finally {
    db.close();
  }
}

/** The tenant's schema as SQLite keeps it: every object but SQLite's own, with its SQL text. */
export function schemaOf(file: string, includeAirlift = true): { type: string; name: string; sql: string | null }[] {
  const db = new Database(file, { readonly: true });
  try {
    return (db.prepare("SELECT type, name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name").all() as { type: string; name: string; sql: string | null }[]).filter(
      (o) => includeAirlift || !o.name.startsWith('airlift_'),
    );
  } finally {
    db.close();
  }
}

/**
 * A writer process: random inserts, updates (key changes, unique swaps, multi-row), deletes on every
 * table, each in its own transaction; writes refused by a closed gate are counted and retried later.
 * Prints `writing` once started and `{"ok":n,"refused":m}` when sent SIGTERM.
 */
export function writerScript(file: string, seed: number): string {
  return `
    const Database = require(${JSON.stringify(require.resolve('better-sqlite3'))});
    const db = new Database(${JSON.stringify(file)}, { fileMustExist: true });
    db.pragma('busy_timeout = 10000');
    let a = ${seed} >>> 0;
    const rnd = () => { a = (a + 0x6d2b79f5) >>> 0; let t = a; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
    const pick = (n) => Math.floor(rnd() * n);
    const K = '"Kunden ""Ä"" 客户"';
    const ops = [
      () => db.prepare('INSERT OR IGNORE INTO ' + K + ' VALUES (?, ?, ?, ?, ?)').run('N-' + pick(100000), 'neu', rnd(), Buffer.from([pick(256)]), 'n' + pick(1e9) + '@x'),
      () => db.prepare('UPDATE ' + K + ' SET name = ?, balance = balance + 0.1 WHERE "Kunden-Nr" = ?').run('Kunde ' + pick(1000), 'K-' + pick(200) + '-ü'),
      () => { // swap two unique e-mails through a third value: unique conflicts when replayed out of order
        const x = 'K-' + pick(200) + '-ü', y = 'K-' + pick(200) + '-ü';
        const ex = db.prepare('SELECT email FROM ' + K + ' WHERE "Kunden-Nr" = ?').pluck();
        const e1 = ex.get(x), e2 = ex.get(y);
        if (x === y || !e1 || !e2) return;
        const set = db.prepare('UPDATE ' + K + ' SET email = ? WHERE "Kunden-Nr" = ?');
        set.run('tmp-' + pick(1e9), x); set.run(e1, y); set.run(e2, x);
      },
      () => db.prepare('UPDATE ' + K + ' SET "Kunden-Nr" = ? WHERE "Kunden-Nr" = ?').run('R-' + pick(100000), 'K-' + pick(200) + '-ü'),
      () => db.prepare('DELETE FROM ' + K + ' WHERE "Kunden-Nr" = ?').run('N-' + pick(100000)),
      () => db.prepare('INSERT OR REPLACE INTO "order lines" VALUES (?, ?, ?, ?)').run(pick(80), pick(6), 'sku-' + pick(30), pick(100)),
      () => db.prepare('UPDATE "order lines" SET qty = qty + 1 WHERE order_id = ?').run(pick(80)),
      () => db.prepare('UPDATE OR IGNORE "order lines" SET line = line + 10 WHERE order_id = ? AND line = ?').run(pick(80), pick(4)),
      () => db.prepare('DELETE FROM "order lines" WHERE order_id = ? AND line = ?').run(pick(80), pick(6)),
      () => db.prepare('INSERT OR REPLACE INTO "text keyed" VALUES (?, ?, ?)').run('c' + pick(400), pick(2) ? 'eu' : 'アジア', Buffer.alloc(pick(2000), pick(256))),
      () => db.prepare('INSERT INTO events_nopk VALUES (?, ?, ?)').run(new Date().toISOString(), 'live', rnd()),
      () => db.prepare('UPDATE events_nopk SET n = n * 2 WHERE rowid = ?').run(1 + pick(300)),
      () => db.prepare('DELETE FROM events_nopk WHERE rowid = ?').run(1 + pick(300)),
    ];
    let ok = 0, refused = 0;
    process.on('SIGTERM', () => { process.stdout.write(JSON.stringify({ ok, refused }) + '\\n'); process.exit(0); });
    process.stdout.write('writing\\n');
    const tick = () => {
      for (let i = 0; i < 20; i++) {
        try { db.transaction(ops[pick(ops.length)]).immediate(); ok++; }
        catch (err) { if (/fenced/.test(err.message)) refused++; else { console.error(err); process.exit(3); } }
      }
      setTimeout(tick, 2);
    };
    tick();
  `;
}
