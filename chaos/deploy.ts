// The tenant's application deploy that the `schema-change` fault lands in the middle of a migration:
// a new table with a few rows and a nullable column on an existing table, written straight to the
// database the tenant is served from, as a migration tool of the application would.
import Database from 'better-sqlite3';
import type { HarnessRow } from './checker';

export const DEPLOY_TABLE = 'release_notes';
export const DEPLOY_COLUMN = { table: 'campaigns', column: 'promo' };

/** Runs the deploy on `file`; returns the rows it wrote, which the tenant's final primary must hold. */
export function deploySchemaChange(file: string, tenantId: string, rows = 5): HarnessRow[] {
  const db = new Database(file, { fileMustExist: true });
  try {
    db.pragma('busy_timeout = 10000');
    const written: HarnessRow[] = [];
    db.transaction(() => {
      db.exec(`CREATE TABLE ${DEPLOY_TABLE} (id INTEGER PRIMARY KEY, note TEXT NOT NULL, at TEXT NOT NULL)`);
      const insert = db.prepare(`INSERT INTO ${DEPLOY_TABLE} (note, at) VALUES (?, ?)`);
      for (let i = 1; i <= rows; i++) {
        const note = `deploy-${tenantId}-${i}`;
        insert.run(note, new Date().toISOString());
        written.push({ table: DEPLOY_TABLE, column: 'note', value: note });
      }
      db.exec(`ALTER TABLE ${DEPLOY_COLUMN.table} ADD COLUMN ${DEPLOY_COLUMN.column} TEXT`);
      const promo = `promo-${tenantId}`;
      // The highest id: the application's own updates touch campaigns 1 to 3 only.
      db.prepare(`UPDATE ${DEPLOY_COLUMN.table} SET ${DEPLOY_COLUMN.column} = ? WHERE id = (SELECT max(id) FROM ${DEPLOY_COLUMN.table})`).run(promo);
      written.push({ table: DEPLOY_COLUMN.table, column: DEPLOY_COLUMN.column, value: promo });
    }).immediate();
    return written;
  } finally {
    db.close();
  }
}
