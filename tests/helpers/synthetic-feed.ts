// A synthetic war-room feed: N tenants that move through the phases a step per look, for the page's
// load test (a thousand rows) without a thousand workflows. Rows are built like the real feed's.
import { PHASES } from '../../workflows/contract';
import { controlsOf, progressOf, type FeedSnapshot, type FeedSource, type TenantRow } from '../../cli/war-room-feed';

export class SyntheticFeed implements FeedSource {
  looks = 0;
  /** Tenants whose row changes at the next look (all of them when undefined). */
  moving?: Set<string>;
  readonly rows: TenantRow[];

  constructor(count: number, name: (i: number) => string | undefined = () => undefined) {
    this.rows = Array.from({ length: count }, (_, i) => ({
      tenantId: `tenant-${String(i + 1).padStart(4, '0')}`,
      name: name(i),
      waveId: i % 2 ? 'w-odd' : 'w-even',
      state: 'running',
      phase: PHASES[i % 8],
      paused: false,
      bytesDone: 0,
      bytesTotal: 4 * 1048576,
      tablesVerified: 0,
      mismatches: 0,
      progress: { fraction: 0, label: '' },
      timeline: [{ phase: 'preflight', ms: 1200 }, { phase: PHASES[i % 8], ms: 0, current: true }],
      workflowId: `airlift-tenant-tenant-${i + 1}`,
      controls: controlsOf({ state: 'running', phase: PHASES[i % 8], paused: false }),
      runs: [],
    }));
  }

  async collect(): Promise<FeedSnapshot> {
    this.looks++;
    for (const row of this.rows) {
      if (this.moving && !this.moving.has(row.tenantId)) continue;
      row.bytesDone = Math.min(row.bytesTotal, row.bytesDone + 262144);
      row.elapsedMs = this.looks * 1000;
      row.progress = progressOf({ ...row, state: 'running', phase: 'copying' });
      row.timeline[row.timeline.length - 1].ms += 1000;
    }
    const waves = ['w-even', 'w-odd'].map((waveId) => ({
      waveId, running: true, paused: false, aborted: false, runs: 1, tenants: this.rows.filter((r) => r.waveId === waveId).map((r) => r.tenantId),
    }));
    return { waves, tenants: this.rows.map((r) => ({ ...r, timeline: r.timeline.map((s) => ({ ...s })) })), eventsPerSecond: 100 + (this.looks % 7) * 10 };
  }
}
