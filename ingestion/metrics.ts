// Gateway counters and the write-latency histogram, rendered as Prometheus text.
const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export class GatewayMetrics {
  accepted = 0;
  duplicates = 0;
  held = 0;
  /** Writes refused by a tenant database's write gate (a fenced or demoted side), then retried. */
  gateRefusals = 0;
  readonly rejected = new Map<string, number>();
  private readonly counts = BUCKETS.map(() => 0);
  private sum = 0;
  private count = 0;

  reject(reason: string): void {
    this.rejected.set(reason, (this.rejected.get(reason) ?? 0) + 1);
  }

  observeWrite(seconds: number): void {
    this.sum += seconds;
    this.count++;
    BUCKETS.forEach((b, i) => {
      if (seconds <= b) this.counts[i]++;
    });
  }

  render(): string {
    const lines = [
      '# HELP airlift_events_accepted_total Tracking events written and acknowledged (new ones).',
      '# TYPE airlift_events_accepted_total counter',
      `airlift_events_accepted_total ${this.accepted}`,
      '# HELP airlift_events_duplicate_total Events acknowledged again without a second write (same event_id).',
      '# TYPE airlift_events_duplicate_total counter',
      `airlift_events_duplicate_total ${this.duplicates}`,
      '# HELP airlift_events_held_total Events that waited for a tenant fence to lift.',
      '# TYPE airlift_events_held_total counter',
      `airlift_events_held_total ${this.held}`,
      '# HELP airlift_gate_refusals_total Writes refused by a fenced tenant database and retried after reloading the route.',
      '# TYPE airlift_gate_refusals_total counter',
      `airlift_gate_refusals_total ${this.gateRefusals}`,
      '# HELP airlift_requests_rejected_total Requests refused, by reason.',
      '# TYPE airlift_requests_rejected_total counter',
      ...[...this.rejected].map(([reason, n]) => `airlift_requests_rejected_total{reason="${reason}"} ${n}`),
      '# HELP airlift_write_seconds Time to write a request\'s events to the primary, holds included.',
      '# TYPE airlift_write_seconds histogram',
      ...BUCKETS.map((b, i) => `airlift_write_seconds_bucket{le="${b}"} ${this.counts[i]}`),
      `airlift_write_seconds_bucket{le="+Inf"} ${this.count}`,
      `airlift_write_seconds_sum ${this.sum}`,
      `airlift_write_seconds_count ${this.count}`,
    ];
    return `${lines.join('\n')}\n`;
  }
}
