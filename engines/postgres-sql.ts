// The SQL the PostgreSQL engine sends, in one place so `airlift plan` shows exactly what runs.
// airlift's objects live in the tenant database's own `airlift` schema: the write gate (one row),
// the change log, the replication cursors, and one capture function per table. Identifiers are
// quoted with quoteDoubled; values are always parameters.
import { quoteDoubled as q } from './identifiers';

/** SQLSTATE of a write the gate refused (class AL: airlift; custom codes are allowed outside the standard classes). */
export const FENCED_SQLSTATE = 'AL409';

/** A fence whose lease has run out, by the database's clock (an expression over airlift.gate's row). */
export const LAPSED = `(state = 'fenced' AND expires_at IS NOT NULL AND expires_at <= clock_timestamp())`;

/** The gate as readers see it. */
export const readGateQuery = `SELECT state, migration_id, token, ${LAPSED} AS lapsed FROM airlift.gate`;

/** The schema, the gate, the change log and the cursors; idempotent. */
export const captureSchema = `
CREATE SCHEMA IF NOT EXISTS airlift;
CREATE TABLE IF NOT EXISTS airlift.gate (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  state text NOT NULL CHECK (state IN ('open', 'fenced', 'standby')),
  migration_id text,
  token text,
  set_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  -- A fence's lease, by the database's own clock: past it, writers take the side as open.
  expires_at timestamptz
);
ALTER TABLE airlift.gate ADD COLUMN IF NOT EXISTS expires_at timestamptz;
CREATE SEQUENCE IF NOT EXISTS airlift.change_seq;
CREATE TABLE IF NOT EXISTS airlift.changes (
  seq bigint PRIMARY KEY,
  xid xid8 NOT NULL,
  tbl text NOT NULL,
  key text[] NOT NULL
);
CREATE TABLE IF NOT EXISTS airlift.cursors (stream text PRIMARY KEY, seq bigint NOT NULL);
-- Every writer's statement checks the gate under a share lock on its row: a gate change (an UPDATE of
-- that row) waits for every writer that read the old gate to finish, and every writer after it sees it.
CREATE OR REPLACE FUNCTION airlift.gate_check() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE g record;
BEGIN
  SELECT state, migration_id, ${LAPSED} AS lapsed INTO g FROM airlift.gate FOR SHARE;
  IF FOUND AND g.state <> 'open' AND NOT g.lapsed THEN
    RAISE EXCEPTION 'airlift: writes to tenant database % are fenced (its write gate is %, migration %); reload the route and retry', current_database(), g.state, coalesce(g.migration_id, 'unknown')
      USING ERRCODE = '${FENCED_SQLSTATE}';
  END IF;
  RETURN NULL;
END $fn$;
`;

/** The name of a table's capture function: by the table's OID, so a rename keeps it and a rebuilt table has none. */
export const captureFunction = (oid: number): string => `airlift.${q(`capture_${oid}`)}`;

/**
 * One table's capture: a row trigger that logs the key of every inserted, updated (old and new key)
 * or deleted row, and a TRUNCATE trigger that logs every key before they go. The transaction's id is
 * taken before the sequence number, so the reader's horizon (`safeHeadQuery`) covers the row.
 */
export function captureTriggerStatements(table: { oid: number; name: string; key: string[] }): string[] {
  const fn = captureFunction(table.oid);
  const keyOf = (row: string) => `ARRAY[${table.key.map((k) => `${row}.${q(k)}::text`).join(', ')}]`;
  const target = `public.${q(table.name)}`;
  const keyArgs = table.key.map((k) => `'${k.replace(/'/g, "''")}'`).join(', ');
  return [
    `CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE x xid8 := pg_current_xact_id();
BEGIN
  IF TG_LEVEL = 'STATEMENT' THEN
    INSERT INTO airlift.changes (xid, seq, tbl, key) SELECT x, nextval('airlift.change_seq'), TG_TABLE_NAME, ${keyOf('t')} FROM ONLY ${target} t;
    RETURN NULL;
  END IF;
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    INSERT INTO airlift.changes (xid, seq, tbl, key) VALUES (x, nextval('airlift.change_seq'), TG_TABLE_NAME, ${keyOf('OLD')});
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') AND (TG_OP = 'INSERT' OR ${keyOf('NEW')} IS DISTINCT FROM ${keyOf('OLD')}) THEN
    INSERT INTO airlift.changes (xid, seq, tbl, key) VALUES (x, nextval('airlift.change_seq'), TG_TABLE_NAME, ${keyOf('NEW')});
  END IF;
  RETURN NULL;
END $fn$`,
    // CREATE OR REPLACE (PostgreSQL 14+) takes the lock the caller already holds; DROP TRIGGER would
    // take an ACCESS EXCLUSIVE one and deadlock with a reader of another table in the same transaction.
    `CREATE OR REPLACE TRIGGER airlift_gate BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON ${target} FOR EACH STATEMENT EXECUTE FUNCTION airlift.gate_check()`,
    `CREATE OR REPLACE TRIGGER airlift_capture AFTER INSERT OR UPDATE OR DELETE ON ${target} FOR EACH ROW EXECUTE FUNCTION ${fn}(${keyArgs})`,
    `CREATE OR REPLACE TRIGGER airlift_capture_truncate BEFORE TRUNCATE ON ${target} FOR EACH STATEMENT EXECUTE FUNCTION ${fn}(${keyArgs})`,
  ];
}

/**
 * The change-log head, and an id no transaction that already holds a seq can be at or above (this
 * statement's own new transaction id, taken after its snapshot). A change numbered below the head may
 * belong to a transaction still open (commit order is not sequence order): the head is safe to read
 * up to only once every transaction below that id has ended (`openTransactionsQuery`).
 */
export const headSnapshotQuery = `SELECT coalesce(max(seq), 0)::text AS head, pg_current_xact_id()::text AS horizon FROM airlift.changes`;

/**
 * How many transactions below the horizon are still open, in a snapshot taken after the head's own
 * transaction ended (so its xmax is past the horizon and every such transaction is in its list).
 */
export const openTransactionsQuery = `SELECT count(*)::int AS open FROM pg_snapshot_xip(pg_current_snapshot()) AS x WHERE x < $1::xid8`;

export const readChangesQuery = `SELECT seq::text AS seq, tbl, key FROM airlift.changes WHERE seq > $1::bigint AND seq <= $2::bigint ORDER BY seq LIMIT $3::int`;

/** The user tables of the public schema with their columns, key (primary key, else a unique index of NOT NULL columns) and unique indexes. */
export const listTablesQuery = `
SELECT c.oid::int AS oid, c.relname AS name, c.relkind AS kind,
  (SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
  (SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated <> '') AS generated,
  (SELECT array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS types,
  (SELECT json_agg(json_build_object('primary', i.indisprimary, 'columns', (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord) JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum),
     'notNull', (SELECT bool_and(a.attnotnull) FROM unnest(i.indkey) k(attnum) JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum)) ORDER BY NOT i.indisprimary, i.indexrelid)
   FROM pg_index i WHERE i.indrelid = c.oid AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indisvalid) AS uniques
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
ORDER BY c.relname`;

/** Tables outside the public schema (capture covers the public schema only). */
export const otherSchemasQuery = `
SELECT n.nspname || '.' || c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('public', 'airlift', 'pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
ORDER BY 1`;

/** The capture trigger of each public table, with the key columns it was made for. */
export const captureTriggersQuery = `
SELECT c.relname AS name, t.tgname AS trigger, encode(t.tgargs, 'escape') AS args
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND t.tgname IN ('airlift_capture', 'airlift_gate', 'airlift_capture_truncate')`;

/** The sequences of the tenant's own schemas (serial, identity and free-standing) that have handed out a value, with the last one. */
export const sequencesQuery = `
SELECT format('%I.%I', s.schemaname, s.sequencename) AS name, s.last_value::text AS value
FROM pg_sequences s WHERE s.schemaname NOT IN ('airlift', 'pg_catalog', 'information_schema') AND s.last_value IS NOT NULL`;

/** Sets a sequence's last value (the caller never lowers one). */
export const setSequenceStatement = `SELECT setval($1::regclass, $2::bigint, true)`;

/** Server facts preflight checks: the version, and whether this login may install capture. */
export const serverFactsQuery = `
SELECT current_setting('server_version_num')::int AS version, current_setting('server_version') AS version_text,
  has_database_privilege(current_user, current_database(), 'CREATE') AS can_create_schema,
  (SELECT coalesce(array_agg(c.relname::text ORDER BY c.relname), '{}') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT pg_has_role(current_user, c.relowner, 'USAGE')) AS not_owned,
  (SELECT coalesce(array_agg(extname::text ORDER BY extname), '{}') FROM pg_extension WHERE extname <> 'plpgsql') AS extensions`;
