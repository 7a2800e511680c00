// The quick subset of the fault matrix (`npm run chaos -- --quick`): the nastiest cases on real
// processes (Temporal dev server, Azurite, two gateway nodes behind admin proxies, a worker process),
// each judged by the independent checker (itself judged in checker.test.ts).
import { QUICK } from '../../chaos/matrix';
import { runMatrix } from '../../chaos/run';

describe('the fault matrix, quick subset', () => {
  it('loses no acknowledged event and strands no tenant in the nastiest cases', async () => {
    const lines: string[] = [];
    const { results, summary } = await runMatrix({ quick: true, bundle: process.env.AIRLIFT_TEST_WORKFLOW_BUNDLE, log: (l) => lines.push(l) });

    expect(results.map((r) => `${r.phase} x ${r.fault}`)).toEqual(QUICK.map((c) => `${c.phase} x ${c.fault}`));
    const failures = results
      .filter((r) => !r.verdict.ok)
      .map((r) => `${r.phase} x ${r.fault}: ${r.verdict.broken.map((b) => `[${b.invariant}] ${b.detail}`).join('; ')} (${r.notes.join(' / ')})`);
    expect(failures).toEqual([]);
    expect(summary).toMatchObject({ failed: 0, eventsLost: 0, eventsDuplicated: 0, strandedTenants: 0 });
    // Every case ran under live load through both gateway nodes.
    for (const r of results) expect(r.verdict.eventsAccepted).toBeGreaterThan(100);
  }, 900_000);
});
