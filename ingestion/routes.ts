// How activities move a tenant's route: through the gateways' admin API when live ingestion is
// configured, or straight in the catalog when nothing else writes tracking events.
import type { Catalog, CatalogEntry, ModeOrder, Side, WriteMode } from './catalog';
import { GatewayAdmin } from './admin-client';
import { StaleModeChangeError, SwitchSupersededError } from '../protocol/errors';

/**
 * The gateway nodes that did not answer a call (down, partitioned), named with why. The database's
 * write gate is the authority: their writes to a side that is not open are refused there, and a node
 * reloads its routes from the catalog when refused and when it starts, so a call goes on without them.
 */
export interface NodesAway {
  unreachable?: string[];
}

export interface RouteControl {
  /**
   * Holds new events on every node that answers; resolves when in-flight ones are written. The fence
   * lifts by itself after `leaseMs` on a node nobody unfences. (A switch times its pause budget on its own clock.)
   */
  fence(tenantId: string, leaseMs?: number): Promise<NodesAway>;
  unfence(tenantId: string): Promise<{ pauseMs: number; held: number } & NodesAway>;
  /** With `order`, refused (StaleModeChangeError) when a later step of the same migration changed the mode already. */
  setMode(tenantId: string, change: { writeMode?: WriteMode; outbox?: boolean }, order?: ModeOrder): Promise<NodesAway>;
  /** Tells every node that answers that the catalog (already flipped by the caller) names `side`; each confirms. */
  setPrimary(tenantId: string, side: Side, outbox: boolean): Promise<NodesAway>;
}

/**
 * The activities write the shared catalog themselves, then have every node reload it and confirm,
 * carrying the catalog's epoch: a node that receives a change late (a request delayed past a later
 * flip) finds the catalog past that epoch and refuses it instead of writing an old route back.
 */
export function gatewayRoutes(gateways: string[], token: string, catalog: Catalog): RouteControl {
  const admin = new GatewayAdmin(gateways, token);
  return {
    fence: (t, leaseMs) => admin.fence(t, leaseMs),
    unfence: (t) => admin.unfence(t),
    setMode: (t, change, order) => admin.setMode(t, change, orderedMode(catalog, t, change, order).epoch),
    setPrimary: async (t, side, outbox) => {
      const entry = catalog.ensure(t);
      if (entry.primary !== side) throw new SwitchSupersededError(`${t}: the catalog names the ${entry.primary}, not the ${side}; the flip is not sent to the gateways`);
      return admin.setPrimary(t, side, outbox, entry.epoch);
    },
  };
}

export function catalogRoutes(catalog: Catalog): RouteControl {
  const fencedAt = new Map<string, number>();
  return {
    fence: async (t) => {
      if (!fencedAt.has(t)) fencedAt.set(t, Date.now());
      return {};
    },
    unfence: async (t) => {
      const since = fencedAt.get(t);
      fencedAt.delete(t);
      return { pauseMs: since === undefined ? 0 : Date.now() - since, held: 0 };
    },
    setMode: async (t, change, order) => {
      orderedMode(catalog, t, change, order);
      return {};
    },
    // The caller flipped the catalog; there is no node to tell. A stale caller must not flip it back.
    setPrimary: async (t, side) => {
      const entry = catalog.ensure(t);
      if (entry.primary !== side) throw new SwitchSupersededError(`${t}: the catalog names the ${entry.primary}, not the ${side}`);
      return {};
    },
  };
}

function orderedMode(catalog: Catalog, tenantId: string, change: { writeMode?: WriteMode; outbox?: boolean }, order?: ModeOrder): CatalogEntry {
  const entry = catalog.setMode(tenantId, change, order);
  if (!entry) throw new StaleModeChangeError(`${tenantId}: step ${order!.step} of workflow run ${order!.owner} asked for ${JSON.stringify(change)} after a later step had changed the mode; not applied`);
  return entry;
}
