// TEST DOUBLE, not SQL Server: an in-process stand-in that answers exactly the statements airlift's
// preflight inventory sends (matched by their full text and declared parameter types, so a statement
// that drifts from its snapshot is refused here too), from state a test sets and changes. It models
// the catalog views those statements read: sys.databases, sys.master_files (as a size),
// sys.database_principals / sys.server_principals (users and logins joined by SID), msdb's Agent
// jobs, sys.sql_expression_dependencies, and the catalog listTablesQuery reads.
import type { Statement, CatalogColumnRow } from '../../engines/mssql-sql';
import * as tsql from '../../engines/mssql-sql';
import * as inventory from '../../engines/mssql-inventory';

export interface FakeDatabase {
  recoveryModel: 'FULL' | 'SIMPLE' | 'BULK_LOGGED';
  compatibilityLevel: number;
  encrypted: boolean;
  collation: string;
  state: 'ONLINE' | 'RESTORING' | 'OFFLINE';
  sizeBytes: number;
  /** Users by SID (hex without 0x); a user finds its login when the server has a login with that SID. */
  users: { name: string; type: 'S' | 'U' | 'G'; sid: string }[];
  references: { server?: string; database: string; schema: string; object: string }[];
  tables: CatalogColumnRow[];
  canBackup: boolean;
}

export interface FakeServerState {
  productVersion: string;
  engineEdition: number;
  edition: string;
  databases: Record<string, FakeDatabase>;
  logins: { name: string; sid: string; type: 'S' | 'U' | 'G' }[];
  jobs: { name: string; step: string; database: string; enabled: boolean }[];
  /** false: this login cannot read msdb. */
  msdbReadable: boolean;
  canCreateDatabase: boolean;
  canAlterCredential: boolean;
}

export function fakeDatabase(more: Partial<FakeDatabase> = {}): FakeDatabase {
  return {
    recoveryModel: 'FULL', compatibilityLevel: 150, encrypted: false, collation: 'SQL_Latin1_General_CP1_CI_AS', state: 'ONLINE',
    sizeBytes: 10 * 1024 ** 3, users: [], references: [], tables: [], canBackup: true, ...more,
  };
}

export class FakeSqlServer {
  /** Every statement sent, in order, as sent (text, values, declared types). */
  readonly sent: { sql: string; values: Record<string, unknown>; types?: Record<string, string> }[] = [];
  /** Connections opened and not closed yet. */
  open = 0;

  constructor(public state: FakeServerState) {}

  /** A connection to this server; statements on a closed one fail as they would on a real one. */
  connect(): inventory.SqlRunner & { close(): Promise<void> } {
    let closed = false;
    this.open++;
    return {
      run: async <T>(statement: Statement, values: Record<string, unknown> = {}): Promise<T[]> => {
        if (closed) throw new Error('fake SQL Server: connection closed');
        const all = { ...statement.params, ...values };
        this.sent.push({ sql: statement.sql, values: all, types: statement.types });
        return this.answer(statement, all) as T[];
      },
      close: async () => {
        if (!closed) this.open--;
        closed = true;
      },
    };
  }

  private answer(statement: Statement, values: Record<string, unknown>): unknown[] {
    const s = this.state;
    const same = (expected: Statement) => expected.sql === statement.sql && JSON.stringify(expected.types ?? {}) === JSON.stringify(statement.types ?? {});
    const named = typeof values.database === 'string' ? values.database : undefined;
    if (same(inventory.serverInventoryQuery)) return [{ product_version: s.productVersion, engine_edition: s.engineEdition, edition: s.edition }];
    if (same(inventory.loginsInventoryQuery)) return s.logins.map((l) => ({ login_name: l.name, sid: Buffer.from(l.sid, 'hex'), login_type: l.type }));
    if (same(inventory.restorePermissionsQuery)) return [{ create_db: s.canCreateDatabase ? 1 : 0, credential: s.canAlterCredential ? 1 : 0 }];
    if (named !== undefined) {
      const db = s.databases[named];
      if (same(inventory.backupPermissionQuery(named))) return [{ id: db ? 5 : null, can_backup: db ? (db.canBackup ? 1 : 0) : null }];
      if (same(inventory.databaseInventoryQuery(named)))
        return db ? [{ recovery_model_desc: db.recoveryModel, compatibility_level: db.compatibilityLevel, is_encrypted: db.encrypted, collation_name: db.collation, state_desc: db.state, size_bytes: String(db.sizeBytes) }] : [];
      if (same(inventory.agentJobsInventoryQuery(named))) {
        if (!s.msdbReadable) throw Object.assign(new Error("The SELECT permission was denied on the object 'sysjobs', database 'msdb', schema 'dbo'."), { number: 229 });
        return s.jobs.filter((j) => j.database === named).map((j) => ({ job_name: j.name, step_name: j.step, enabled: j.enabled }));
      }
      if (same(inventory.crossDatabaseInventoryQuery(named)))
        return (db?.references ?? []).map((r) => ({ referenced_server_name: r.server ?? null, referenced_database_name: r.database, referencing_schema: r.schema, referencing_object: r.object }));
    }
    // Statements that name their database in the text (three-part names), not as a parameter.
    for (const [name, db] of Object.entries(s.databases)) {
      if (same(inventory.usersInventoryQuery(name)))
        return db.users.map((u) => ({ user_name: u.name, user_type: u.type, sid: Buffer.from(u.sid, 'hex'), login_name: s.logins.find((l) => l.sid === u.sid)?.name ?? null }));
      // ORDER BY s.name, t.name, c.column_id (the rows of one table are kept in column order).
      if (same(tsql.listTablesQuery(name))) return [...db.tables].sort((a, b) => `${a.schema_name}.${a.table_name}`.localeCompare(`${b.schema_name}.${b.table_name}`));
    }
    throw new Error(`fake SQL Server: statement not understood (not one airlift's inventory sends, or sent with other declared types):\n${statement.sql}`);
  }
}
