// What `airlift plan --check` asks of an engine: to try its endpoints (connect, permissions, the
// databases) and to say what each tenant's move needs (ready / warning / blocking, with the fix).
// Nothing is changed by either.

export interface CheckResult {
  what: string;
  ok: boolean;
  detail: string;
}

export type Verdict = 'ready' | 'warning' | 'blocking';

export interface Finding {
  item: string;
  verdict: Verdict;
  detail: string;
  /** What to do, for a warning or a blocking finding. */
  fix?: string;
}

/** Per tenant: what its source and target need (ready / warning / blocking, with the fix), and each table's row-hash statement. */
export interface TenantReadiness {
  tenant: string;
  database: string;
  findings: Finding[];
  /** The SQL Server version level both sides hash at: the older of the two. */
  rowHashLevel?: number;
  /** How that level reads for a person (`newest (2016 or later)`). */
  rowHashLevelName?: string;
  rowHashes: { table: string; sql: string; types: Record<string, string> }[];
}

/** A server connection `--check` reads through; tests give an in-process test double. */
export interface CheckConnection {
  run<T = Record<string, unknown>>(statement: { sql: string }, values?: Record<string, unknown>): Promise<T[]>;
  close(): Promise<void>;
}

/** What `--check` reaches out to for the engines; tests replace it with test doubles. */
export interface EngineCheckDeps {
  connect(e: { engine: string; server: string; port: number; user?: string; passwordEnv?: string; encrypt: boolean; trustServerCertificate: boolean }, env: NodeJS.ProcessEnv): Promise<CheckConnection>;
  /** A Managed Instance through ARM: its name, location and reserved storage. */
  managedInstance(e: { subscriptionId: string; resourceGroup: string; managedInstance: string }): Promise<{ name: string; location: string; storageBytes?: number }>;
}

/** One `--check` run: the connections and instances it opened, shared by every endpoint and tenant. */
export interface CheckSession {
  env: NodeJS.ProcessEnv;
  deps: EngineCheckDeps;
  fleet: { sources: Record<string, { engine: string }>; targets: Record<string, { engine: string }>; tenants: { id: string; database: string; source: string; target: string }[] };
  /** `source:<name>` / `target:<name>`: the connection `checkEndpoint` opened, or why it could not. */
  connections: Map<string, CheckConnection | Error>;
  /** What ARM said about a target instance, by target name. */
  instances: Map<string, { storageBytes?: number }>;
}

/** An engine's part of `plan` and `plan --check`. */
export interface PlanInventory<E> {
  /** The statements `plan` prints under journaling, catching up and verifying. */
  planDetails?(): { journaling: string[]; catchingUp: string[]; verifying: string[] };
  /** Tries one endpoint for the databases of `role`; may open a connection for `readiness` in the session. */
  checkEndpoint(name: string, endpoint: E, role: 'source' | 'target', databases: string[], session: CheckSession): Promise<CheckResult[]>;
  /** For a tenant whose source is this engine: what its move needs. */
  readiness?(tenant: { id: string; database: string; source: string; target: string }, session: CheckSession): Promise<TenantReadiness | undefined>;
  /** For a tenant whose source is this engine: what `plan` says beyond the steps (its JSON, and the same as lines). */
  planFacts?(input: PlanFactsInput<E>): { facts: unknown; lines: string[] };
}

/** What `planFacts` is told of a tenant's move. */
export interface PlanFactsInput<E> {
  database: string;
  source: E;
  target: { restoreKind: string; autoCompleteRestore?: boolean };
  restoreAccess: 'managed-identity' | 'sas';
  /** How long a restore's SAS is made valid for. */
  sasMinutes: number;
  logBackupSeconds: number;
}
