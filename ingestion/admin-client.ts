// The activities' side of the admin API: every change is sent to every gateway node, and a call
// returns only when each node has answered that the change is in force there.
import type { Side, WriteMode } from './catalog';
import type { TenantView } from './router';

export class GatewayAdminError extends Error {
  override name = 'GatewayAdminError';
}

export class GatewayAdmin {
  constructor(
    private readonly gateways: string[],
    private readonly token: string,
  ) {}

  private async all<T>(tenantId: string, action: string, body?: object): Promise<T[]> {
    return Promise.all(
      this.gateways.map(async (base) => {
        const url = `${base.replace(/\/$/, '')}/admin/tenants/${encodeURIComponent(tenantId)}${action ? `/${action}` : ''}`;
        let res: Response;
        try {
          res = await fetch(url, {
            method: body ? 'POST' : 'GET',
            headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
            body: body ? JSON.stringify(body) : undefined,
            signal: AbortSignal.timeout(30_000),
          });
        } catch (err) {
          throw new GatewayAdminError(`gateway ${base}: ${action || 'view'} ${tenantId} failed: ${(err as Error).message}`);
        }
        if (!res.ok) throw new GatewayAdminError(`gateway ${base}: ${action || 'view'} ${tenantId} answered ${res.status}: ${await res.text()}`);
        return (await res.json()) as T;
      }),
    );
  }

  view(tenantId: string): Promise<TenantView[]> {
    return this.all<TenantView>(tenantId, '');
  }

  /** Fences on every node; the fence holds from the earliest node's moment. */
  async fence(tenantId: string): Promise<{ fencedAt: number }> {
    const answers = await this.all<{ fencedAt: number }>(tenantId, 'fence', {});
    return { fencedAt: Math.min(...answers.map((a) => a.fencedAt)) };
  }

  /** Unfences everywhere: the pause is the longest any node held, the held count their sum. */
  async unfence(tenantId: string): Promise<{ pauseMs: number; held: number }> {
    const answers = await this.all<{ pauseMs: number; held: number }>(tenantId, 'unfence', {});
    return { pauseMs: Math.max(...answers.map((a) => a.pauseMs)), held: answers.reduce((n, a) => n + a.held, 0) };
  }

  setMode(tenantId: string, change: { writeMode?: WriteMode; outbox?: boolean }): Promise<TenantView[]> {
    return this.all<TenantView>(tenantId, 'mode', change);
  }

  setPrimary(tenantId: string, side: Side, outbox: boolean): Promise<TenantView[]> {
    return this.all<TenantView>(tenantId, 'primary', { side, outbox });
  }
}
