// Holds a race window open in a protocol test: an engine that stalls when its write gate is set to
// `open`, as a worker whose event loop is blocked would, until the test wakes it.
import type { Engine, GateExpectation, WriteGate } from '../../engines/engine';

export interface StalledEngine {
  /** The engine to hand to the attempt that must stall. */
  engine: Engine;
  /** Resolves when the attempt reached the stall. */
  reached: Promise<void>;
  wake(): void;
}

/** Stalls `before` the gate is opened (the open has not happened) or `after` it (the next step has not). */
export function stallGateOpen(engine: Engine, when: 'before' | 'after'): StalledEngine {
  let wake!: () => void;
  const asleep = new Promise<void>((r) => (wake = r));
  let reach!: () => void;
  const reached = new Promise<void>((r) => (reach = r));
  const stall = async (gate: WriteGate) => {
    if (gate.state !== 'open') return;
    reach();
    await asleep;
  };
  const stalled = Object.assign(Object.create(engine) as Engine, {
    setWriteGate: async (database: string, gate: WriteGate, expect?: GateExpectation) => {
      if (when === 'before') await stall(gate);
      const applied = await engine.setWriteGate(database, gate, expect);
      if (when === 'after') await stall(gate);
      return applied;
    },
  });
  return { engine: stalled, reached, wake };
}
