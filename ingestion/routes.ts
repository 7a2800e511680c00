// How activities move a tenant's route: through the gateways' admin API when live ingestion is
// configured, or straight in the catalog when nothing else writes tracking events.
import type { Catalog, Side, WriteMode } from './catalog';
import { GatewayAdmin } from './admin-client';

export interface RouteControl {
  /** Holds new events; resolves when in-flight ones are written. */
  fence(tenantId: string): Promise<{ fencedAt: number }>;
  unfence(tenantId: string): Promise<{ pauseMs: number; held: number }>;
  setMode(tenantId: string, change: { writeMode?: WriteMode; outbox?: boolean }): Promise<void>;
  setPrimary(tenantId: string, side: Side, outbox: boolean): Promise<void>;
}

export function gatewayRoutes(gateways: string[], token: string): RouteControl {
  const admin = new GatewayAdmin(gateways, token);
  return {
    fence: (t) => admin.fence(t),
    unfence: (t) => admin.unfence(t),
    setMode: async (t, change) => void (await admin.setMode(t, change)),
    setPrimary: async (t, side, outbox) => void (await admin.setPrimary(t, side, outbox)),
  };
}

export function catalogRoutes(catalog: Catalog): RouteControl {
  const fencedAt = new Map<string, number>();
  return {
    fence: async (t) => {
      if (!fencedAt.has(t)) fencedAt.set(t, Date.now());
      return { fencedAt: fencedAt.get(t)! };
    },
    unfence: async (t) => {
      const since = fencedAt.get(t);
      fencedAt.delete(t);
      return { pauseMs: since === undefined ? 0 : Date.now() - since, held: 0 };
    },
    setMode: async (t, change) => void catalog.setMode(t, change),
    setPrimary: async (t, side, outbox) => void catalog.setPrimary(t, side, outbox),
  };
}
