// Connects the CLI to Temporal: the environment (TEMPORAL_ADDRESS, …) first, else the stack that
// `airlift dev` left running in this folder, else localhost:7233. Also lends that stack's Azurite to
// a command that reads blobs when the fleet's storage variable is not set.
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { temporalSettingsFromEnv, type TemporalSettings } from '../config/temporal';
import { azuriteConnectionString } from '../azure/azurite';
import { ConnectionError } from '../protocol/errors';
import type { StorageConfig } from '../azure/blob-store';

/** Where `airlift dev` says how to reach its stack: `.airlift/dev.json` beside the fleet file (or in its working folder without one). */
export const DEV_STATE_FILE = join('.airlift', 'dev.json');

export interface DevState {
  address: string;
  namespace: string;
  uiUrl?: string;
  /** The war-room page. */
  warRoomUrl?: string;
  pid: number;
  /** Azurite's port (its account is the public development one). */
  azuritePort?: number;
  /** Where the stack keeps Temporal's history and the blobs. */
  stateDir?: string;
  /** The fleet file its worker runs for. */
  fleet?: string;
}

/** Folders a dev.json is looked for in: the working folder, then the folder of the fleet file the command names. */
const devStateFolders = new Set<string>(['.']);

/** A command given a fleet file also finds the stack that `airlift dev -f` left beside it. */
export function lookBesideFleet(fleetFile: string): void {
  devStateFolders.add(dirname(resolve(fleetFile)));
}

export function devStateFile(folder: string): string {
  return join(folder, DEV_STATE_FILE);
}

export function readDevState(): DevState | undefined {
  for (const folder of devStateFolders) {
    const file = devStateFile(folder);
    if (!existsSync(file)) continue;
    const state = JSON.parse(readFileSync(file, 'utf8')) as DevState;
    try {
      process.kill(state.pid, 0);
      return state;
    } catch {
      // That stack is gone; a later folder may name a live one.
    }
  }
  return undefined;
}

export function temporalSettings(): TemporalSettings {
  const dev = process.env.TEMPORAL_ADDRESS ? undefined : readDevState();
  return temporalSettingsFromEnv(process.env, dev?.address);
}

/** The environment with the dev stack's Azurite filled in for the fleet's storage variable, when that is unset. */
export function storageEnv(storage: StorageConfig, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const name = storage.connectionStringEnv;
  if (!name || env[name]) return env;
  const dev = readDevState();
  return dev?.azuritePort ? { ...env, [name]: azuriteConnectionString(dev.azuritePort) } : env;
}

export async function connectClient(): Promise<{ client: Client; settings: TemporalSettings; close: () => Promise<void> }> {
  const settings = temporalSettings();
  const connection = await Connection.connect({ address: settings.address, tls: settings.tls, apiKey: settings.apiKey, connectTimeout: '10s' }).catch((err: Error) => {
    throw new ConnectionError(`cannot reach Temporal at ${settings.address} (${err.message.split('\n')[0]}); start the stack with \`airlift dev\`, or point TEMPORAL_ADDRESS at a running cluster`);
  });
  return { client: new Client({ connection, namespace: settings.namespace }), settings, close: () => connection.close() };
}

export async function connectWorker(): Promise<{ connection: NativeConnection; settings: TemporalSettings }> {
  const settings = temporalSettings();
  const connection = await NativeConnection.connect({ address: settings.address, tls: settings.tls, apiKey: settings.apiKey });
  return { connection, settings };
}
