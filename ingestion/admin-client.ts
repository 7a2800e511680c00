// The activities' side of the admin API: every change is sent to every gateway node, and a call
// returns when each node that answers has said the change is in force there. A node that does not
// answer (down, partitioned, 5xx) is named and left behind: the database's write gate is the
// authority, so its writes to a side that is not open are refused and it reloads its route. A node
// that refuses (4xx: a bad token, a stale change) fails the call; a refused fence is lifted everywhere.
import { GatewayAdminError, GatewayAdminRefusedError } from '../protocol/errors';
import type { Side, WriteMode } from './catalog';
import type { TenantView } from './router';

export { GatewayAdminError, GatewayAdminRefusedError };

export interface GatewayAdminOptions {
  /** How long one node may take to answer one call (a fence waits for in-flight writes). */
  timeoutMs?: number;
  /** Where the lifting of a half-raised fence is reported; lines carry node and tenant only. */
  log?: (line: string) => void;
}

/** How long a node may take to answer a call that waits for nothing there (flip, release, mode). */
const QUICK_CALL_MS = 3000;

type Answer<T> = { node: string; ok: true; value: T } | { node: string; ok: false; refused: boolean; reason: string };
type Failure = Extract<Answer<unknown>, { ok: false }>;

/** A node as it may appear in logs and errors: scheme, host and path, never credentials or query. */
function nodeName(base: string): string {
  try {
    const url = new URL(base);
    return `${url.protocol}//${url.host}${url.pathname.replace(/\/$/, '')}`;
  } catch {
    return '<gateway URL that does not parse>';
  }
}

function describe(failures: Failure[]): string {
  return failures.map((f) => `${f.node} (${f.reason})`).join('; ');
}

/** One error for a call that failed on some nodes: a refusal (4xx) anywhere is not retried. */
function failure(what: string, failures: Failure[], total: number, after: string): Error {
  const message = `gateway admin: ${what} failed on ${failures.length} of ${total} node(s): ${describe(failures)}; ${after}`;
  return failures.some((f) => f.refused) ? new GatewayAdminRefusedError(message) : new GatewayAdminError(message);
}

export class GatewayAdmin {
  private readonly timeoutMs: number;
  private readonly log: (line: string) => void;

  constructor(
    private readonly gateways: string[],
    private readonly token: string,
    options: GatewayAdminOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.log = options.log ?? ((line) => console.warn(line));
  }

  /** One call to one node; never throws: a node that fails is an answer saying how. */
  private async call<T>(base: string, tenantId: string, action: string, body?: object, timeoutMs = this.timeoutMs): Promise<Answer<T>> {
    const node = nodeName(base);
    const url = `${base.replace(/\/$/, '')}/admin/tenants/${encodeURIComponent(tenantId)}${action ? `/${action}` : ''}`;
    try {
      const res = await fetch(url, {
        method: body ? 'POST' : 'GET',
        headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
        body: body ? JSON.stringify(body) : undefined,
        signal: AbortSignal.timeout(timeoutMs),
      });
      const text = await res.text();
      if (!res.ok) {
        let said = text;
        try {
          said = String((JSON.parse(text) as { error?: unknown }).error ?? text);
        } catch {
          // not JSON: quote the text as it came
        }
        return { node, ok: false, refused: res.status < 500, reason: `answered ${res.status}: ${said.replace(/\s+/g, ' ').slice(0, 200)}` };
      }
      try {
        return { node, ok: true, value: JSON.parse(text) as T };
      } catch {
        return { node, ok: false, refused: false, reason: `answered ${res.status} with a body that is not JSON` };
      }
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      if (e.name === 'TimeoutError') return { node, ok: false, refused: false, reason: `no answer within ${timeoutMs} ms` };
      return { node, ok: false, refused: false, reason: `unreachable: ${e.cause?.code ?? e.cause?.message ?? e.message}` };
    }
  }

  private each<T>(tenantId: string, action: string, body?: object, timeoutMs?: number): Promise<Answer<T>[]> {
    return Promise.all(this.gateways.map((base) => this.call<T>(base, tenantId, action, body, timeoutMs)));
  }

  /** Every node's answer, or one error naming every node that failed. */
  private async all<T>(tenantId: string, action: string, body?: object): Promise<T[]> {
    const answers = await this.each<T>(tenantId, action, body);
    const failed = answers.filter((a): a is Failure => !a.ok);
    if (failed.length) throw failure(`${action || 'view'} of tenant ${tenantId}`, failed, answers.length, 'the nodes not named did it; retry the call, it is safe to repeat');
    return answers.map((a) => (a as { value: T }).value);
  }

  /**
   * The answers of the nodes that answered, and the nodes that did not (named with why); one error
   * when any node refused. A change that only some nodes took is in force where it was taken.
   */
  private async reachable<T>(tenantId: string, action: string, body?: object): Promise<{ values: T[]; unreachable?: string[] }> {
    // A flip, a release or a mode change waits for nothing on a node: one that takes connections but
    // does not answer within seconds is named, and held events on the others are not kept waiting.
    const answers = await this.each<T>(tenantId, action, body, Math.min(this.timeoutMs, QUICK_CALL_MS));
    return this.split(tenantId, action, answers);
  }

  private split<T>(tenantId: string, action: string, answers: Answer<T>[]): { values: T[]; unreachable?: string[] } {
    const failed = answers.filter((a): a is Failure => !a.ok);
    if (failed.some((f) => f.refused)) throw failure(`${action} of tenant ${tenantId}`, failed, answers.length, 'the nodes not named did it; retry the call, it is safe to repeat');
    for (const f of failed) this.log(`gateway admin: ${action} of tenant ${tenantId}: ${f.node} did not answer (${f.reason}); the write gate holds for it, and it reloads its routes when it serves again`);
    const values = answers.filter((a) => a.ok).map((a) => (a as { value: T }).value);
    return failed.length ? { values, unreachable: failed.map((f) => `${f.node} (${f.reason})`) } : { values };
  }

  view(tenantId: string): Promise<TenantView[]> {
    return this.all<TenantView>(tenantId, '');
  }

  /**
   * Fences on every node that answers, each for at most `leaseMs` unless raised again or lifted.
   * When a node refuses, the fence is lifted again everywhere (a node that refused may have raised it
   * first) so no node holds the tenant's events for a cut-over that is not happening.
   */
  async fence(tenantId: string, leaseMs?: number): Promise<{ fencedAt?: number; unreachable?: string[] }> {
    // A node that takes connections but never answers must not hold the switch past its budget:
    // with a lease, each node gets at most a quarter of it to answer, and is then named as not answering.
    const timeoutMs = leaseMs === undefined ? undefined : Math.min(this.timeoutMs, Math.max(300, Math.floor(leaseMs / 4)));
    const answers = await this.each<{ fencedAt: number }>(tenantId, 'fence', leaseMs === undefined ? {} : { leaseMs }, timeoutMs);
    const failed = answers.filter((a): a is Failure => !a.ok);
    if (!failed.some((f) => f.refused)) {
      const { values, unreachable } = this.split(tenantId, 'fence', answers);
      return { ...(values.length ? { fencedAt: Math.min(...values.map((v) => v.fencedAt)) } : {}), ...(unreachable ? { unreachable } : {}) };
    }

    const lifts = await Promise.all(this.gateways.map((base) => this.call(base, tenantId, 'unfence', {})));
    const raised = new Set(answers.filter((a) => a.ok).map((a) => a.node));
    const lifted: string[] = [];
    const stuck: Failure[] = [];
    for (const lift of lifts) {
      if (!raised.has(lift.node)) continue; // a node that failed the fence: lifting it was a precaution
      if (lift.ok) {
        lifted.push(lift.node);
        this.log(`gateway admin: fence of tenant ${tenantId} failed on ${failed.map((f) => f.node).join(', ')}; lifted it again on ${lift.node}`);
      } else {
        stuck.push(lift);
        this.log(`gateway admin: fence of tenant ${tenantId} could not be lifted on ${lift.node} (${lift.reason}); unfence it there`);
      }
    }
    const after = stuck.length
      ? `the fence was lifted on ${lifted.length ? lifted.join(', ') : 'no other node'} but is still raised on ${describe(stuck)}; unfence the tenant, then retry the fence`
      : `the fence was lifted on the others${lifted.length ? ` (${lifted.join(', ')})` : ''}, so no node holds the tenant's events; retry the fence when the node answers`;
    throw failure(`fence of tenant ${tenantId}`, failed, answers.length, after);
  }

  /**
   * Unfences every node that answers: the pause is the longest any node held, the held count their
   * sum. A node that does not answer holds its fence until its lease runs out (or it restarts).
   */
  async unfence(tenantId: string): Promise<{ pauseMs: number; held: number; unreachable?: string[] }> {
    const { values, unreachable } = await this.reachable<{ pauseMs: number; held: number }>(tenantId, 'unfence', {});
    return { pauseMs: Math.max(0, ...values.map((a) => a.pauseMs)), held: values.reduce((n, a) => n + a.held, 0), ...(unreachable ? { unreachable } : {}) };
  }

  /** With `epoch`, a node that finds the catalog already past it refuses (409) instead of acting on a stale change. */
  async setMode(tenantId: string, change: { writeMode?: WriteMode; outbox?: boolean }, epoch?: number): Promise<{ views: TenantView[]; unreachable?: string[] }> {
    const { values, unreachable } = await this.reachable<TenantView>(tenantId, 'mode', { ...change, ...(epoch === undefined ? {} : { epoch }) });
    return { views: values, ...(unreachable ? { unreachable } : {}) };
  }

  async setPrimary(tenantId: string, side: Side, outbox: boolean, epoch?: number): Promise<{ views: TenantView[]; unreachable?: string[] }> {
    const { values, unreachable } = await this.reachable<TenantView>(tenantId, 'primary', { side, outbox, ...(epoch === undefined ? {} : { epoch }) });
    return { views: values, ...(unreachable ? { unreachable } : {}) };
  }
}
