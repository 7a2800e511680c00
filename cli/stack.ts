// The embedded stack: a Temporal dev server (with the Web UI and airlift's search attributes) and
// an in-memory Azurite, both started by airlift and stopped with it.
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { startAzurite, freePort, type AzuriteHandle } from '../azure/azurite';
import { SEARCH_ATTRIBUTES } from '../workflows/contract';
import { ensureTemporalCli } from './temporal-cli';

export interface EmbeddedStack {
  temporal: TestWorkflowEnvironment;
  address: string;
  namespace: string;
  uiUrl?: string;
  azurite: AzuriteHandle;
  close(): Promise<void>;
}

export async function startEmbeddedStack(options: { ui?: boolean; log?: (line: string) => void } = {}): Promise<EmbeddedStack> {
  const log = options.log ?? (() => {});
  const path = ensureTemporalCli(log);
  const uiPort = options.ui ? await freePort() : undefined;
  const [temporalStart, azuriteStart] = await Promise.allSettled([
    TestWorkflowEnvironment.createLocal({
      server: {
        executable: path ? { type: 'existing-path', path } : undefined,
        ip: '127.0.0.1',
        ui: Boolean(options.ui),
        uiPort,
        searchAttributes: SEARCH_ATTRIBUTES,
        log: { format: 'pretty', level: 'error' },
      },
    }),
    startAzurite(),
  ]);
  if (temporalStart.status === 'rejected' || azuriteStart.status === 'rejected') {
    // Whatever did start is stopped, so a failed start leaves no process behind.
    if (temporalStart.status === 'fulfilled') await temporalStart.value.teardown();
    if (azuriteStart.status === 'fulfilled') await azuriteStart.value.stop();
    throw temporalStart.status === 'rejected' ? temporalStart.reason : (azuriteStart as PromiseRejectedResult).reason;
  }
  const temporal = temporalStart.value;
  const azurite = azuriteStart.value;
  return {
    temporal,
    address: temporal.address,
    namespace: temporal.namespace ?? 'default',
    uiUrl: uiPort ? `http://127.0.0.1:${uiPort}` : undefined,
    azurite,
    close: async () => {
      await Promise.allSettled([temporal.teardown(), azurite.stop()]);
    },
  };
}
