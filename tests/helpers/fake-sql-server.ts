// TEST DOUBLE, not SQL Server: an in-process stand-in that answers exactly the statements airlift's
// preflight inventory sends (matched by their full text and declared parameter types, so a statement
// that drifts from its snapshot is refused here too), from state a test sets and changes. It models
// the catalog views those statements read: sys.databases, sys.master_files (as a size),
// sys.database_principals / sys.server_principals (users and logins joined by SID), msdb's Agent
// jobs, sys.sql_expression_dependencies, and the catalog listTablesQuery reads. For log shipping it
// keeps each database's log as an LSN counter with the rows written at each LSN, takes full and log
// backups (files in the emulated backup format, tests/helpers/emulated-backup.ts) into the backup
// folder, and records them in msdb's backup history as SQL Server does (a log backup starts where the
// last one of the database ended, whoever took it: a "customer job" moves the chain on too).
import { join } from 'node:path';
import type { Statement, CatalogColumnRow } from '../../engines/mssql-sql';
import * as tsql from '../../engines/mssql-sql';
import * as inventory from '../../engines/mssql-inventory';
import * as logsql from '../../engines/mssql-log-sql';
import * as counters from '../../engines/mssql-counters-sql';
import { writeEmulatedBackup } from './emulated-backup';

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
  /** The log's current LSN (decimal text, as msdb's numeric(25,0)). */
  lsn: string;
  /** Where the next log backup starts: the last LSN of the last log backup, whoever took it. */
  logChainLsn: string;
  /** false: FULL but no full backup since (sys.database_recovery_status.last_log_backup_lsn NULL): BACKUP LOG fails. */
  logChainStarted?: boolean;
  /** Rows written, each with the LSN of its log record. */
  rows: { lsn: string; row: Record<string, unknown> }[];
  /** IDENTITY columns: the current identity value, and whether the table ever issued one (sys.identity_columns.last_value not NULL). */
  identities?: { schema: string; table: string; current: bigint; increment: bigint; used: boolean }[];
  /** SEQUENCE objects: current_value and increment (sys.sequences). */
  sequences?: { schema: string; name: string; current: bigint; increment: bigint }[];
}

/** One row of msdb.dbo.backupset joined with backupmediafamily. */
export interface FakeBackupSet {
  database: string;
  type: 'D' | 'L';
  firstLsn: string;
  lastLsn: string;
  device: string;
  finishedAt: Date;
  /** A COPY_ONLY backup (msdb backupset.is_copy_only): it does not move the log chain on. */
  copyOnly?: boolean;
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
  /** The backup folder: as the server writes it, and where this process reads it. */
  backupFolder?: { server: string; local: string };
  /** msdb's backup history. */
  backups?: FakeBackupSet[];
}

export function fakeDatabase(more: Partial<FakeDatabase> = {}): FakeDatabase {
  return {
    recoveryModel: 'FULL', compatibilityLevel: 150, encrypted: false, collation: 'SQL_Latin1_General_CP1_CI_AS', state: 'ONLINE',
    sizeBytes: 10 * 1024 ** 3, users: [], references: [], tables: [], canBackup: true, lsn: '1000000', logChainLsn: '990000', rows: [], ...more,
  };
}

export class FakeSqlServer {
  /** Every statement sent, in order, as sent (text, values, declared types). */
  readonly sent: { sql: string; values: Record<string, unknown>; types?: Record<string, string> }[] = [];
  /** Connections opened and not closed yet. */
  open = 0;

  constructor(public state: FakeServerState) {}

  /** A connection to this server; statements on a closed one fail as they would on a real one. */
  connect(database?: string): inventory.SqlRunner & { close(): Promise<void> } {
    let closed = false;
    this.open++;
    return {
      run: async <T>(statement: Statement, values: Record<string, unknown> = {}): Promise<T[]> => {
        if (closed) throw new Error('fake SQL Server: connection closed');
        const all = { ...statement.params, ...values };
        this.sent.push({ sql: statement.sql, values: all, types: statement.types });
        return this.answer(statement, all, database) as T[];
      },
      close: async () => {
        if (!closed) this.open--;
        closed = true;
      },
    };
  }

  /**
   * An insert into a table with an IDENTITY column: the value it gets, as "DBCC CHECKIDENT
   * (Transact-SQL)" describes it: the current value plus the increment, or, on a table that never
   * issued one (created, or emptied by TRUNCATE TABLE, since), the current value itself (the seed, or
   * what RESEED set).
   */
  insertIdentity(database: string, schema: string, table: string): bigint {
    const id = this.state.databases[database].identities!.find((i) => i.schema === schema && i.table === table)!;
    id.current = id.used ? id.current + id.increment : id.current;
    id.used = true;
    return id.current;
  }

  /** NEXT VALUE FOR a sequence ("ALTER SEQUENCE": after RESTART WITH v, the next value is v). */
  nextValueFor(database: string, schema: string, name: string): bigint {
    const sq = this.state.databases[database].sequences!.find((q) => q.schema === schema && q.name === name)!;
    const next = sq.current + sq.increment;
    sq.current = next;
    return next;
  }

  /** A write of the tenant's application: one log record. */
  write(database: string, row: Record<string, unknown>): void {
    const db = this.state.databases[database];
    db.lsn = String(BigInt(db.lsn) + 100n);
    db.rows.push({ lsn: db.lsn, row });
  }

  /**
   * A log backup taken by someone else (the customer's SQL Agent job) to `device`, outside airlift's
   * folder: it moves the chain on, and its file is never shipped.
   */
  customerLogBackup(database: string, device: string): FakeBackupSet {
    return this.backup(database, 'L', device);
  }

  /**
   * A COPY_ONLY log backup someone else takes: it holds the log since the last log backup but leaves
   * the chain where it was ("Copy-only backups (SQL Server)"), so the next log backup starts there too.
   */
  customerCopyOnlyLogBackup(database: string, device: string): FakeBackupSet {
    const db = this.state.databases[database];
    db.lsn = String(BigInt(db.lsn) + 1n);
    const set: FakeBackupSet = { database, type: 'L', firstLsn: db.logChainLsn, lastLsn: db.lsn, device, finishedAt: new Date(), copyOnly: true };
    (this.state.backups ??= []).push(set);
    return set;
  }

  private backup(database: string, type: 'D' | 'L', device: string): FakeBackupSet {
    const db = this.state.databases[database];
    // The backup's own log record, then its range: a full backup from the current LSN, a log backup from where the last one ended.
    db.lsn = String(BigInt(db.lsn) + 1n);
    const firstLsn = type === 'D' ? String(BigInt(db.lsn) - 1n) : db.logChainLsn;
    const lastLsn = db.lsn;
    if (type === 'L') db.logChainLsn = lastLsn;
    const set: FakeBackupSet = { database, type, firstLsn, lastLsn, device, finishedAt: new Date() };
    (this.state.backups ??= []).push(set);
    const folder = this.state.backupFolder;
    if (folder && device.startsWith(folder.server)) {
      const rows = db.rows.filter((r) => (type === 'D' ? true : BigInt(r.lsn) >= BigInt(firstLsn)) && BigInt(r.lsn) < BigInt(lastLsn));
      writeEmulatedBackup(join(folder.local, device.slice(folder.server.length).replace(/^[\\/]+/, '')), { type, database, firstLsn, lastLsn, checksum: true, rows });
    }
    return set;
  }

  private answer(statement: Statement, values: Record<string, unknown>, connected?: string): unknown[] {
    const s = this.state;
    const same = (expected: Statement) => expected.sql === statement.sql && JSON.stringify(expected.types ?? {}) === JSON.stringify(statement.types ?? {});
    const named = typeof values.database === 'string' ? values.database : undefined;
    if (same(inventory.serverInventoryQuery)) return [{ product_version: s.productVersion, engine_edition: s.engineEdition, edition: s.edition }];
    if (same(inventory.loginsInventoryQuery)) return s.logins.map((l) => ({ login_name: l.name, sid: Buffer.from(l.sid, 'hex'), login_type: l.type }));
    if (same(inventory.restorePermissionsQuery)) return [{ create_db: s.canCreateDatabase ? 1 : 0, credential: s.canAlterCredential ? 1 : 0 }];
    if (same(tsql.compressionSupportedQuery)) return [{ supported: false }];
    const history = (s.backups ?? []).filter((b) => b.database === named);
    const row = (b: FakeBackupSet) => ({ type: b.type, first_lsn: b.firstLsn, last_lsn: b.lastLsn, device: b.device, finished_at: b.finishedAt });
    if (named !== undefined) {
      const db = s.databases[named];
      if (same(logsql.recoveryModelQuery(named))) return db ? [{ recovery_model: db.recoveryModel, log_chain_started: db.recoveryModel !== 'SIMPLE' && db.logChainStarted !== false }] : [];
      if (same(logsql.logBackupJobsQuery(named))) {
        if (!s.msdbReadable) throw Object.assign(new Error("The SELECT permission was denied on the object 'sysjobs', database 'msdb', schema 'dbo'."), { number: 229 });
        return s.jobs.filter((j) => j.database === named).map((j) => ({ job_name: j.name, step_id: 1, step_name: j.step, enabled: j.enabled }));
      }
      if (same(logsql.logBackupHistoryQuery(named))) return history.filter((b) => b.type === 'L' && !b.copyOnly && b.finishedAt >= (values.since as Date)).sort((a, b) => cmp(a.lastLsn, b.lastLsn)).map(row);
      if (same(logsql.backupSetByDeviceQuery(named))) return history.filter((b) => b.device === values.device).slice(-1).map(row);
      if (same(logsql.logBackupsAfterQuery(named)))
        return history.filter((b) => b.type === 'L' && !b.copyOnly && BigInt(b.lastLsn) > BigInt(String(values.after_lsn))).sort((a, b) => cmp(a.firstLsn, b.firstLsn)).map(row);
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
    // Statements run in the database the connection opened.
    const here = connected !== undefined ? s.databases[connected] : undefined;
    if (here && same(counters.keyCountersQuery))
      return [
        ...(here.identities ?? []).filter((i) => i.used && i.increment > 0n).map((i) => ({ kind: 'identity', schema_name: i.schema, object_name: i.table, current_value: String(i.current) })),
        ...(here.sequences ?? []).filter((q) => q.increment > 0n).map((q) => ({ kind: 'sequence', schema_name: q.schema, object_name: q.name, current_value: String(q.current) })),
      ];
    if (here && same(counters.raiseIdentityStatement)) {
      const id = (here.identities ?? []).find((i) => i.schema === values.schema && i.table === values.name);
      const value = BigInt(values.value as number);
      if (!id || id.increment <= 0n || !(id.used ? id.current < value : id.current <= value)) return [{ raised: false }];
      // DBCC CHECKIDENT (table, RESEED, v) sets the current value to v, whatever it was.
      id.current = id.used ? value : value + id.increment;
      return [{ raised: true }];
    }
    if (here && same(counters.raiseSequenceStatement)) {
      const sq = (here.sequences ?? []).find((q) => q.schema === values.schema && q.name === values.name);
      const value = BigInt(values.value as number);
      if (!sq || sq.increment <= 0n || !(sq.current < value)) return [{ raised: false }];
      // ALTER SEQUENCE … RESTART WITH v (the statement restarts with @value + increment): the next value returned is v.
      const restartWith = value + sq.increment;
      sq.current = restartWith - sq.increment;
      return [{ raised: true }];
    }
    if (here && same(tsql.listTablesQuery)) return [...here.tables].sort((a, b) => `${a.schema_name}.${a.table_name}`.localeCompare(`${b.schema_name}.${b.table_name}`));
    // Statements that name their database in the text (three-part names, BACKUP), not as a parameter.
    for (const [name, db] of Object.entries(s.databases)) {
      const device = String(values.disk0 ?? '');
      if ([true, false].some((compression) => same(tsql.backupStatement(name, [device], { compression })))) {
        if (!db.canBackup) throw Object.assign(new Error(`BACKUP DATABASE permission denied in database '${name}'.`), { number: 262 });
        this.backup(name, 'D', device);
        return [];
      }
      if ([true, false].some((compression) => same(logsql.logBackupStatement(name, device, { compression })))) {
        if (db.recoveryModel === 'SIMPLE') throw Object.assign(new Error(`The statement BACKUP LOG is not allowed while the recovery model is SIMPLE.`), { number: 4208 });
        // Msg 4214: "BACKUP LOG cannot be performed because there is no current database backup."
        if (db.logChainStarted === false) throw Object.assign(new Error('BACKUP LOG cannot be performed because there is no current database backup.'), { number: 4214 });
        this.backup(name, 'L', device);
        return [];
      }
      if (same(inventory.usersInventoryQuery(name)))
        return db.users.map((u) => ({ user_name: u.name, user_type: u.type, sid: Buffer.from(u.sid, 'hex'), login_name: s.logins.find((l) => l.sid === u.sid)?.name ?? null }));
      // ORDER BY s.name, t.name, c.column_id (the rows of one table are kept in column order).
      if (same(tsql.listTablesQuery(name))) return [...db.tables].sort((a, b) => `${a.schema_name}.${a.table_name}`.localeCompare(`${b.schema_name}.${b.table_name}`));
    }
    throw new Error(`fake SQL Server: statement not understood (not one airlift's inventory sends, or sent with other declared types):\n${statement.sql}`);
  }
}

const cmp = (a: string, b: string) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0);
