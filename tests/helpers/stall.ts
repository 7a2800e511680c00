// Holds a race window open in a protocol test: an engine that stalls at one setting of its write
// gate, as a worker whose event loop is blocked would, until the test wakes it.
import type { Engine, GateExpectation, WriteGate } from '../../engines/engine';

export interface StalledEngine {
  /** The engine to hand to the attempt that must stall. */
  engine: Engine;
  /** Resolves when the attempt reached the stall. */
  reached: Promise<void>;
  wake(): void;
}

/**
 * Stalls the switch right before its flip, on the old primary (`engine`): where it makes its fence
 * hold without a lease (the last step before the catalog flips), `before` or `after` that step.
 */
export function stallBeforeFlip(engine: Engine, when: 'before' | 'after'): StalledEngine {
  return stallGate(engine, when, (_gate, expect) => expect?.unexpired === true);
}

/** Stalls the first setWriteGate call `matching`, `before` or `after` it is applied. */
export function stallGate(engine: Engine, when: 'before' | 'after', matching: (gate: WriteGate, expect?: GateExpectation) => boolean): StalledEngine {
  let wake!: () => void;
  const asleep = new Promise<void>((r) => (wake = r));
  let reach!: () => void;
  const reached = new Promise<void>((r) => (reach = r));
  let stalled = false;
  const stall = async (gate: WriteGate, expect?: GateExpectation) => {
    if (stalled || !matching(gate, expect)) return;
    stalled = true;
    reach();
    await asleep;
  };
  const wrapped = Object.assign(Object.create(engine) as Engine, {
    setWriteGate: async (database: string, gate: WriteGate, expect?: GateExpectation) => {
      if (when === 'before') await stall(gate, expect);
      const applied = await engine.setWriteGate(database, gate, expect);
      if (when === 'after') await stall(gate, expect);
      return applied;
    },
  });
  return { engine: wrapped, reached, wake };
}
