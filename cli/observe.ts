// What the operator sees: each tenant's phase from its status query, live transfer progress from the
// heartbeat of its running activity, and the wave's table. Used by `status`, `demo` and `dev`.
import { defaultPayloadConverter } from '@temporalio/common';
import type { Client } from '@temporalio/client';
import {
  statusQuery,
  tenantWorkflowId,
  waveStatusQuery,
  waveWorkflowId,
  type TenantStatus,
  type WaveStatus,
  type WaveTenantRow,
} from '../workflows/contract';

export interface TenantView {
  tenantId: string;
  state: WaveTenantRow['state'] | 'unknown';
  phase: string;
  bytesDone: number;
  bytesTotal: number;
  percent?: number;
  tablesVerified: number;
  mismatches: number;
  paused: boolean;
  /** Events the dual-write is behind. */
  lag?: number;
  error?: string;
  status?: TenantStatus;
}

interface Heartbeat {
  bytesDone?: number;
  bytesTotal?: number;
  fraction?: number;
  /** From the dual-write. */
  lag?: number;
  cursor?: number;
}

/** The latest heartbeat details of every running activity, merged (a transfer and the dual-write may run together). */
function heartbeatOf(raw: { pendingActivities?: { heartbeatDetails?: { payloads?: unknown[] | null } | null }[] | null }): Heartbeat | undefined {
  let merged: Heartbeat | undefined;
  for (const activity of raw.pendingActivities ?? []) {
    const payload = activity.heartbeatDetails?.payloads?.[0];
    if (!payload) continue;
    const details = defaultPayloadConverter.fromPayload(payload as never) as Heartbeat;
    if (details && typeof details === 'object' && !Array.isArray(details)) merged = { ...merged, ...details };
  }
  return merged;
}

export async function observeTenant(client: Client, tenantId: string, row?: WaveTenantRow): Promise<TenantView> {
  const view: TenantView = {
    tenantId, state: row?.state ?? 'unknown', phase: row?.state === 'pending' ? 'pending' : 'unknown',
    bytesDone: 0, bytesTotal: 0, tablesVerified: 0, mismatches: 0, paused: false, error: row?.error,
  };
  if (row?.state === 'pending') return view;
  const handle = client.workflow.getHandle(tenantWorkflowId(tenantId));
  try {
    const [status, description] = await Promise.all([handle.query(statusQuery), handle.describe()]);
    const beat = description.status.name === 'RUNNING' ? heartbeatOf(description.raw) : undefined;
    Object.assign(view, {
      status,
      phase: status.phase,
      paused: status.paused,
      bytesTotal: beat?.bytesTotal ?? status.bytesTotal,
      bytesDone: beat?.bytesDone ?? status.bytesDone,
      percent: beat?.fraction !== undefined ? Math.round(beat.fraction * 100) : beat?.bytesTotal ? Math.round((100 * (beat.bytesDone ?? 0)) / beat.bytesTotal) : undefined,
      tablesVerified: status.tables.length,
      lag: beat?.lag ?? status.lag,
      mismatches: status.tables.reduce((n, t) => n + t.mismatchedChunks, 0),
      error: view.error ?? status.lastError,
    });
    if (view.state === 'unknown') view.state = description.status.name === 'RUNNING' ? 'running' : status.phase === 'completed' ? 'completed' : status.phase === 'rolled_back' ? 'rolled_back' : 'failed';
  } catch (err) {
    view.error = view.error ?? `no status: ${(err as Error).message}`;
  }
  return view;
}

export async function observeWave(client: Client, waveId: string): Promise<{ wave: WaveStatus; tenants: TenantView[] }> {
  const wave = await client.workflow.getHandle(waveWorkflowId(waveId)).query(waveStatusQuery);
  const tenants = await Promise.all(wave.tenants.map((row) => observeTenant(client, row.tenantId, row)));
  return { wave, tenants };
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

export function renderTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (c ?? '').padEnd(widths[i])).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

export function renderTenants(tenants: TenantView[]): string {
  return renderTable(
    ['TENANT', 'STATE', 'PHASE', 'PROGRESS', 'BYTES', 'TABLES', 'MISMATCH', 'LAG', 'PAUSE', 'HELD', 'NOTE'],
    tenants.map((t) => [
      t.tenantId,
      t.state,
      t.paused ? `${t.phase} (paused)` : t.phase,
      t.percent !== undefined && t.state === 'running' ? `${t.percent}%` : '',
      t.bytesTotal ? `${formatBytes(t.bytesDone)}/${formatBytes(t.bytesTotal)}` : '',
      String(t.tablesVerified),
      String(t.mismatches),
      t.lag !== undefined && t.state === 'running' ? String(t.lag) : '',
      t.status?.cutoverPauseMs !== undefined ? `${t.status.cutoverPauseMs} ms` : '',
      t.status?.heldEvents !== undefined ? String(t.status.heldEvents) : '',
      t.error ? t.error.slice(0, 100) : t.status?.rollbackReason ? `rollback: ${t.status.rollbackReason}` : '',
    ]),
  );
}
