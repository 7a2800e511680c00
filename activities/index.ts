// Activities are built over real adapters given by the worker (or a test): nothing here is global.
import type { ActivityDeps } from './context';
import { preflightActivities } from './preflight';
import { transferActivities } from './transfer';
import { verifyActivities } from './verify';
import { cutoverActivities } from './cutover';
import { dualWriteActivities } from './dual-write';
import { logShippingActivities } from './log-shipping';

export function createActivities(deps: ActivityDeps) {
  return {
    ...preflightActivities(deps),
    ...transferActivities(deps),
    ...verifyActivities(deps),
    ...cutoverActivities(deps),
    ...dualWriteActivities(deps),
    ...logShippingActivities(deps),
  };
}

export type AirliftActivities = ReturnType<typeof createActivities>;
export type { ActivityDeps } from './context';
