// What an engine says about itself to the rest of airlift: what the fleet file accepts for one of its
// endpoints, which sides it can be, how its target restores, and how its adapters are built. One of
// these per engine, listed once in engines/registry.ts; nothing outside engines/ branches on a kind.
import type { z } from 'zod';
import type { Engine, RestoreTarget } from './engine';
import type { PlanInventory } from './plan-check';

/** How a target endpoint restores: a downloaded file, RESTORE FROM URL, or a Managed Instance (LRS through ARM). */
export type RestoreKind = 'file' | 'restore-from-url' | 'managed-instance';

/** A problem with an endpoint that only the whole fleet shows, at `path` below the endpoint. */
export interface EndpointIssue {
  path: (string | number)[];
  message: string;
}

/** What the wiring hands an engine that restores through a service it does not own (ARM). */
export interface RestorerDeps {
  /** The Managed Instance restorer of a target endpoint, signed in by the wiring. */
  managedInstance: (endpoint: never) => RestoreTarget;
}

export interface EngineKind<S extends z.ZodObject = z.ZodObject> {
  /** As written in the fleet file's `engine`. */
  readonly kind: string;
  /** What the fleet file accepts for an endpoint of this engine (a strict object with `engine: <kind>`). */
  readonly endpoint: S;
  /** Whether an endpoint may be a tenant's source, and a target. */
  readonly sides: { source: boolean; target: boolean };
  /** How a target of this engine restores. */
  readonly restoreKind: RestoreKind;
  /** Problems an endpoint has as a source, beyond its schema. */
  sourceIssues?(endpoint: z.infer<S>): EndpointIssue[];
  /** Names the target refuses in the container or a tenant's folder (LRS refuses "backup"), with why. */
  readonly reservedFolderWord?: { pattern: RegExp; reason: string };
  /** The endpoint with its paths resolved against the fleet file's folder. */
  resolvePaths(endpoint: z.infer<S>, abs: (path: string) => string): z.infer<S>;
  /** The engine for an endpoint; a password is read from `env` only when a connection is made. */
  create(endpoint: z.infer<S>, env: NodeJS.ProcessEnv): Engine;
  /** What `airlift plan` shows and `plan --check` tries for this engine's endpoints. */
  readonly plan: PlanInventory<z.infer<S>>;
  /** The restorer of a target endpoint, when it is not the engine itself. */
  restorer?(endpoint: z.infer<S>, engine: Engine, deps: RestorerDeps): RestoreTarget;
}

/** Declares an engine kind, keeping its endpoint's type for its own members. */
export const engineKind = <S extends z.ZodObject>(kind: EngineKind<S>): EngineKind<S> => kind;
