// Every engine airlift knows, one line each. A new engine is a module under engines/ that declares
// its EngineKind (engines/engine-kind.ts), its tests, and one line here.
import { z } from 'zod';
import type { Engine, RestoreTarget } from './engine';
import type { EngineKind, RestoreKind, RestorerDeps } from './engine-kind';
import { managedInstanceKind, mssqlKind } from './mssql-kind';
import { postgresKind } from './postgres-kind';
import { sqliteKind } from './sqlite-kind';

export const ENGINE_KINDS = [
  sqliteKind,
  mssqlKind,
  managedInstanceKind,
  postgresKind,
] as const;

type EndpointsOf<T extends readonly unknown[]> = { -readonly [K in keyof T]: T[K] extends EngineKind<infer S> ? S : never };
type EndpointSchemas = EndpointsOf<typeof ENGINE_KINDS>;

/** What the fleet file accepts for a source or target: one endpoint shape per engine. */
export const endpointSchema = z.discriminatedUnion('engine', ENGINE_KINDS.map((k) => k.endpoint) as unknown as EndpointSchemas, {
  error: (i) => `${JSON.stringify((i.input as { engine?: unknown })?.engine)} is not a supported engine; use ${ENGINE_KINDS.map((k) => `"${k.kind}"`).join(', ')}`,
});

/** One endpoint of the fleet file (a source or a target). */
export type EndpointConfig = z.infer<typeof endpointSchema>;

/** The engine kind of an endpoint. */
export function kindOf(endpoint: { engine: string }): EngineKind {
  const kind = ENGINE_KINDS.find((k) => k.kind === endpoint.engine);
  if (!kind) throw new Error(`no engine registered for "${endpoint.engine}"`);
  return kind as unknown as EngineKind;
}

/** Builds the engine of an endpoint. */
export type EngineFactory = (endpoint: EndpointConfig, env: NodeJS.ProcessEnv) => Engine;

/** The engine of an endpoint; a password is read from `env` only when a connection is made. */
export function createEngine(endpoint: EndpointConfig, env: NodeJS.ProcessEnv = process.env): Engine {
  return kindOf(endpoint).create(endpoint as never, env);
}

export function restoreKindOf(endpoint: EndpointConfig): RestoreKind {
  return kindOf(endpoint).restoreKind;
}

/** The restorer of a target endpoint: the engine itself, or the one its kind builds (a Managed Instance through ARM). */
export function createRestoreTarget(endpoint: EndpointConfig, engine: Engine, deps: RestorerDeps): RestoreTarget {
  const kind = kindOf(endpoint);
  return kind.restorer ? kind.restorer(endpoint as never, engine, deps) : engine;
}

/** The endpoint with its paths resolved against the fleet file's folder. */
export function resolveEndpointPaths<E extends EndpointConfig>(endpoint: E, abs: (path: string) => string): E {
  return kindOf(endpoint).resolvePaths(endpoint as never, abs) as E;
}

/** The engines of a fleet's endpoints, built once by whoever wires a process, and handed to what needs them. */
export interface FleetEngines {
  /** The engine of `sources.<name>` or `targets.<name>`. */
  engine(side: 'sources' | 'targets', name: string): Engine;
  /** How `targets.<name>` is restored: its engine, or the restorer its kind builds. */
  restorer(target: string): RestoreTarget;
  /** Closes every engine (their connection pools). */
  close(): Promise<void>;
}

/** Builds one engine per endpoint of the fleet now, and one restorer per target when first asked for. */
export function fleetEngines(fleet: { sources: Record<string, EndpointConfig>; targets: Record<string, EndpointConfig> }, env: NodeJS.ProcessEnv, deps: RestorerDeps, create: EngineFactory = createEngine): FleetEngines {
  const built = { sources: new Map<string, Engine>(), targets: new Map<string, Engine>() };
  for (const side of ['sources', 'targets'] as const) for (const [name, e] of Object.entries(fleet[side])) built[side].set(name, create(e, env));
  // A restorer is built when first asked for: a gateway never asks, and has no Azure sign-in.
  const restorers = new Map<string, RestoreTarget>();
  const known = <T>(map: Map<string, T>, side: string, name: string): T => {
    const found = map.get(name);
    if (!found) throw new Error(`${side}.${name} is not in the fleet file`);
    return found;
  };
  return {
    engine: (side, name) => known(built[side], side, name),
    restorer: (target) => {
      if (!restorers.has(target)) restorers.set(target, createRestoreTarget(fleet.targets[target], known(built.targets, 'targets', target), deps));
      return restorers.get(target)!;
    },
    close: async () => void (await Promise.all([...built.sources.values(), ...built.targets.values()].map((e) => e.close().catch(() => undefined)))),
  };
}
