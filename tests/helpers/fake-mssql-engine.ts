// TEST DOUBLE wiring: airlift's real SQL Server engine (engines/mssql.ts), every statement it sends
// answered by the SQL Server stand-in (fake-sql-server.ts) instead of a server. What is tested is the
// engine's own code and T-SQL; the stand-in refuses any statement it does not know.
import { MssqlEngine, type MssqlEndpoint } from '../../engines/mssql';
import type { Statement } from '../../engines/mssql-sql';
import type { FakeSqlServer } from './fake-sql-server';

export class FakeBackedMssqlEngine extends MssqlEngine {
  constructor(
    private readonly fake: FakeSqlServer,
    endpoint: MssqlEndpoint,
  ) {
    super(endpoint);
  }

  protected override async run<T = Record<string, unknown>>(database: string, statement: Statement, values: Record<string, unknown> = {}): Promise<T[]> {
    const connection = this.fake.connect(database);
    try {
      return await connection.run<T>(statement, values);
    } catch (err) {
      throw this.classify(err, database);
    } finally {
      await connection.close();
    }
  }
}
