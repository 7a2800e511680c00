// The one place a worker's adapters are built: the engines of the fleet's endpoints, the target
// restorers, the artifact container, the catalog and the route control. Built once per worker and
// handed to the activities (samples-typescript activities-dependency-injection); nothing below keeps
// a module-level cache of its own.
import { DefaultAzureCredential } from '@azure/identity';
import type { TokenCredential } from '@azure/core-auth';
import { FleetConfigError, type LoadedFleet } from '../config/fleet';
import { fleetEngines, type EngineFactory } from '../engines';
import { connectContainer } from '../azure/blob-store';
import { ContainerReadAccess } from '../azure/sas';
import { managedInstanceRestorers } from '../azure/managed-instance';
import { Catalog } from '../ingestion/catalog';
import { catalogRoutes, gatewayRoutes } from '../ingestion/routes';
import type { ActivityDeps } from '../activities/context';

export interface Adapters extends ActivityDeps {
  close(): Promise<void>;
}

export function createAdapters(fleet: LoadedFleet, env: NodeJS.ProcessEnv = process.env, options: { azureCredential?: TokenCredential; createEngine?: EngineFactory } = {}): Adapters {
  const ingestion = fleet.ingestion;
  const token = ingestion ? env[ingestion.adminTokenEnv] : undefined;
  if (ingestion && !token) throw new FleetConfigError(`ingestion.adminTokenEnv: environment variable ${ingestion.adminTokenEnv} is not set on this worker; export the gateways' admin token in it`);
  const container = connectContainer(fleet.storage, env);
  const catalog = new Catalog(fleet.catalog.path);
  const engines = fleetEngines(fleet, env, { managedInstance: managedInstanceRestorers(options.azureCredential ?? new DefaultAzureCredential()) }, options.createEngine);
  return {
    fleet,
    container,
    catalog,
    routes: ingestion ? gatewayRoutes(ingestion.gateways, token!, catalog) : catalogRoutes(catalog),
    engines,
    restoreAccess: new ContainerReadAccess(container),
    close: async () => {
      catalog.close();
      await engines.close();
    },
  };
}
