// The SQL Server engine's error model, on errors exactly as the drivers make them: built with the
// classes mssql and tedious throw (shapes read in node_modules/mssql/lib/error and tedious'
// token handlers), and produced for real by tedious against a closed port and against a local
// stand-in that speaks just enough TDS to refuse a login the way SQL Server does. No SQL Server here.
import sql from 'mssql';
import { ConnectionError as TediousConnectionError, RequestError as TediousRequestError } from 'tedious';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { MssqlEngine, classifyMssqlError, isKeyConflict, type MssqlEndpoint } from '../../engines/mssql';
import { isRetryable } from '../../protocol/errors';

const WHERE = 'SQL Server sql01:1433 (acme)';
const PASSWORD = 'Zx9-Secret-Passw0rd';

/** A query error as mssql's tedious request handler builds it: Error + info, wrapped in RequestError. */
function requestError(number: number, message: string, preceding: number[] = []): Error {
  const make = (n: number, m: string) => {
    const inner = Object.assign(new Error(m), { info: { number: n, state: 1, class: 16, message: m, serverName: 'sql01', procName: '', lineNumber: 1 } });
    return new sql.RequestError(inner as never, 'EREQUEST');
  };
  return Object.assign(make(number, message), { precedingErrors: preceding.map((n) => make(n, `error ${n}`)) });
}

/** A connect failure as mssql's pool builds it: tedious ConnectionError wrapped in mssql ConnectionError. */
function connectError(message: string, code: string, cause?: Error): Error {
  return new sql.ConnectionError(new TediousConnectionError(message, code, cause ? { cause } : undefined) as never);
}

describe('driver errors are classified once, by what a retry can do (issue 7 item 8)', () => {
  const cases: { what: string; expected: string; make: () => Error }[] = [
    // Database engine events and errors: 18456 "Login failed for user", 229/230/262/297/300 "… permission
    // was denied …", 916 the principal cannot access the database: an operator must act; not retried.
    { what: 'login failed (18456)', expected: 'PermissionError', make: () => requestError(18456, "Login failed for user 'airlift'.") },
    { what: 'permission denied on an object (229)', expected: 'PermissionError', make: () => requestError(229, "The SELECT permission was denied on the object 'campaigns'.") },
    { what: 'permission denied in a database (262)', expected: 'PermissionError', make: () => requestError(262, "CREATE DATABASE permission denied in database 'master'.") },
    { what: 'no permission for the action (297)', expected: 'PermissionError', make: () => requestError(297, 'The user does not have permission to perform this action.') },
    { what: 'permission denied on an object (300)', expected: 'PermissionError', make: () => requestError(300, "VIEW SERVER STATE permission was denied on object 'server', database 'master'.") },
    // 4060 "Cannot open database requested by the login", 911 "Database does not exist".
    { what: 'database cannot be opened (4060)', expected: 'DatabaseMissingError', make: () => requestError(4060, 'Cannot open database "acme" requested by the login. The login failed.') },
    { what: 'database does not exist (911)', expected: 'DatabaseMissingError', make: () => requestError(911, "Database 'acme' does not exist. Make sure that the name is entered correctly.") },
    // MSSQLSERVER_1205: "chosen as the deadlock victim. Rerun the transaction."
    { what: 'deadlock victim (1205)', expected: 'ConnectionError', make: () => requestError(1205, 'Transaction (Process ID 57) was deadlocked on lock resources with another process and has been chosen as the deadlock victim. Rerun the transaction.') },
    // Azure SQL "Transient fault error codes": 40613, 40501, 40197, 49918–49920, 4221, 10928, 10929.
    ...[40613, 40501, 40197, 49918, 49919, 49920, 4221, 10928, 10929].map((n) => ({ what: `Azure SQL transient error ${n}`, expected: 'ConnectionError', make: () => requestError(n, `transient ${n}`) })),
    // The change-log lock not granted in time (sp_getapplock < 0, THROWn as 51001).
    { what: 'change-log lock not granted (51001)', expected: 'ConnectionError', make: () => requestError(51001, 'airlift: the change log lock was not granted within 30 s') },
    // An apply into a side that takes writes (THROW 51002): the stream has ended; not retried.
    { what: 'apply refused by an open gate (51002)', expected: 'ReplicationConflictError', make: () => requestError(51002, 'airlift_conflict: changes are not applied to a database that takes writes (its write gate is open)') },
    // A closed write gate (THROW 51000): the writer reloads its route and retries.
    { what: 'fenced write (51000)', expected: 'FencedWriteError', make: () => requestError(51000, 'airlift_fenced: tenant database acme is fenced (migration 3f2a9c0d1e4b5a67); reload the route and retry') },
    // The error that decides may come before the last one (mssql keeps the others in precedingErrors).
    { what: 'deadlock reported before a follow-up error', expected: 'ConnectionError', make: () => requestError(3621, 'The statement has been terminated.', [1205]) },
    // Network: tedious wraps socket errors as ESOCKET with the Node error as cause; timeouts are ETIMEOUT.
    { what: 'connection refused', expected: 'ConnectionError', make: () => connectError('Failed to connect to sql01:1433 - connect ECONNREFUSED 10.0.0.5:1433', 'ESOCKET', Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })) },
    { what: 'connection reset mid-query', expected: 'ConnectionError', make: () => new sql.RequestError(new TediousRequestError('Connection lost - read ECONNRESET', 'ESOCKET') as never, 'EREQUEST') },
    { what: 'connect timeout', expected: 'ConnectionError', make: () => connectError('Failed to connect to sql01:1433 in 15000ms', 'ETIMEOUT') },
    { what: 'request timeout', expected: 'ConnectionError', make: () => new sql.RequestError(new TediousRequestError('Timeout: Request failed to complete in 15000ms', 'ETIMEOUT') as never, 'EREQUEST') },
    { what: 'connection closed under a request', expected: 'ConnectionError', make: () => new sql.ConnectionError('Connection is closed.', 'ECONNCLOSED') },
    // tedious' login error carries no number: its message decides.
    { what: 'login failed, as tedious reports it', expected: 'PermissionError', make: () => connectError("Login failed for user 'airlift'.", 'ELOGIN') },
    // A server that insists on TLS: only the fleet file can fix it.
    { what: 'encryption required', expected: 'FleetConfigError', make: () => connectError("Server requires encryption, set 'encrypt' config option to true.", 'EENCRYPT') },
  ];
  test.each(cases)('$what → $expected', ({ make, expected }) => {
    const classified = classifyMssqlError(make(), WHERE, [PASSWORD]);
    expect(classified.name).toBe(expected);
    expect(isRetryable(classified)).toBe(['ConnectionError', 'FencedWriteError'].includes(expected));
    expect(classified.message.startsWith(`${WHERE}: `)).toBe(true);
    expect(classified.message).not.toContain('\n');
  });

  test('an error the table does not know is passed on unchanged (a syntax error is a bug, not a fault)', () => {
    const err = requestError(102, "Incorrect syntax near 'FROM'.");
    expect(classifyMssqlError(err, WHERE, [PASSWORD])).toBe(err);
  });

  test('the password never reaches the message, even when the driver or server puts it there', () => {
    const classified = classifyMssqlError(connectError(`Login failed for user 'airlift' with password '${PASSWORD}'.`, 'ELOGIN'), WHERE, [PASSWORD]);
    expect(classified.name).toBe('PermissionError');
    expect(classified.message).not.toContain(PASSWORD);
    expect(classified.message).toContain('[redacted]');
  });

  test('a unique-key clash while applying row images is recognised (2627 constraint, 2601 index)', () => {
    expect(isKeyConflict(requestError(2627, "Violation of PRIMARY KEY constraint 'PK_tracking'. Cannot insert duplicate key in object 'dbo.tracking_events'."))).toBe(true);
    expect(isKeyConflict(requestError(2601, "Cannot insert duplicate key row in object 'dbo.tracking_events' with unique index 'ux_seq'."))).toBe(true);
    expect(isKeyConflict(requestError(1205, 'deadlock victim'))).toBe(false);
  });
});

const endpoint = (port: number): MssqlEndpoint => ({ server: '127.0.0.1', port, user: 'airlift', password: PASSWORD, encrypt: false, trustServerCertificate: true, compression: false });

describe('connect failures from the real driver', () => {
  let engine: MssqlEngine | undefined;
  afterEach(async () => engine?.close());

  test('a server that is not listening is a retryable ConnectionError, and the engine connects again next time', async () => {
    const port = await closedPort();
    engine = new MssqlEngine(endpoint(port));
    const first = await engine.probe('acme').catch((e: Error) => e);
    expect(first).toMatchObject({ name: 'ConnectionError', retryable: true });
    expect((first as Error).message).toMatch(/^SQL Server 127\.0\.0\.1:\d+ \(master\): Failed to connect/);
    expect((first as Error).message).not.toContain(PASSWORD);
    // The failed pool is not kept: a second call tries again (and fails again, here).
    await expect(engine.probe('acme')).rejects.toMatchObject({ name: 'ConnectionError' });
  });

  // A stand-in that answers PRELOGIN and then refuses LOGIN7 with SQL Server's error tokens; tedious
  // reports such a failure as ELOGIN without the number, which the engine keeps from the token.
  test.each<[string, { number: number; message: string }[], string]>([
    ['login failed (18456)', [{ number: 18456, message: "Login failed for user 'airlift'." }], 'PermissionError'],
    ['database missing (4060, then 18456 as SQL Server sends them)', [{ number: 4060, message: 'Cannot open database "acme" requested by the login. The login failed.' }, { number: 18456, message: "Login failed for user 'airlift'." }], 'DatabaseMissingError'],
    ['Azure SQL database unavailable (40613) followed by 18456', [{ number: 40613, message: "Database 'acme' on server 'sql01' is not currently available." }, { number: 18456, message: "Login failed for user 'airlift'." }], 'ConnectionError'],
    ['Azure SQL database unavailable (40613), after tedious gave up retrying it', [{ number: 40613, message: "Database 'acme' on server 'sql01' is not currently available. Please retry the connection later." }], 'ConnectionError'],
  ])('a login refused with %s is classified', async (_what, errors, expected) => {
    const tds = await loginRefusingServer(errors);
    try {
      engine = new MssqlEngine(endpoint(tds.port));
      const err = await engine.listTables('acme').catch((e: Error) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).name).toBe(expected);
      expect((err as Error).message).toMatch(/^SQL Server 127\.0\.0\.1:\d+ \(acme\): /);
      expect((err as Error).message).not.toContain(PASSWORD);
      expect(tds.logins()).toBeGreaterThan(0);
    } finally {
      await tds.close();
    }
  });
});

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** TDS packet: type, status EOM, length, spid, packet id, window; then the payload. */
function packet(type: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt8(type, 0);
  header.writeUInt8(0x01, 1);
  header.writeUInt16BE(payload.length + 8, 2);
  header.writeUInt8(1, 6);
  return Buffer.concat([header, payload]);
}

/** PRELOGIN response: VERSION and ENCRYPTION = NOT_SUP, so the login goes in clear to this stand-in. */
function preloginResponse(): Buffer {
  const options = Buffer.from([0x00, 0, 11, 0, 6, 0x01, 0, 17, 0, 1, 0xff]);
  const version = Buffer.from([16, 0, 0x0f, 0xa0, 0, 0]);
  return packet(0x04, Buffer.concat([options, version, Buffer.from([0x02])]));
}

/** ERROR token (0xAA) as TDS 7.4 has it, then a DONE token with the error bit. Little-endian throughout. */
function loginErrorResponse(errors: { number: number; message: string }[]): Buffer {
  const u16 = (n: number) => { const b = Buffer.alloc(2); b.writeUInt16LE(n); return b; };
  const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
  const tokens = errors.map(({ number, message }) => {
    const body = Buffer.concat([
      u32(number), Buffer.from([1, 14]), // state, class
      u16(message.length), Buffer.from(message, 'ucs2'), // message: US_VARCHAR
      Buffer.from([5]), Buffer.from('sql01', 'ucs2'), // server name: B_VARCHAR
      Buffer.from([0]), // procedure name: empty B_VARCHAR
      u32(1), // line number
    ]);
    return Buffer.concat([Buffer.from([0xaa]), u16(body.length), body]);
  });
  const done = Buffer.concat([Buffer.from([0xfd]), u16(0x0002), u16(0), Buffer.alloc(8)]);
  return packet(0x04, Buffer.concat([...tokens, done]));
}

async function loginRefusingServer(errors: { number: number; message: string }[]): Promise<{ port: number; logins: () => number; close: () => Promise<void> }> {
  let logins = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 8 && pending.length >= pending.readUInt16BE(2)) {
        const length = pending.readUInt16BE(2);
        const type = pending.readUInt8(0);
        pending = pending.subarray(length);
        if (type === 0x12) socket.write(preloginResponse());
        if (type === 0x10) {
          logins++;
          socket.end(loginErrorResponse(errors));
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    logins: () => logins,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
