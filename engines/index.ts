// The engines, their roles and their registry: what the rest of airlift imports of engines/.
export { MissingSecretError } from '../protocol/errors';
export { createEngine, createRestoreTarget, restoreKindOf, kindOf, resolveEndpointPaths, endpointSchema, fleetEngines, ENGINE_KINDS, type EndpointConfig, type EngineFactory, type FleetEngines } from './registry';
export type { EngineKind, RestoreKind, RestorerDeps } from './engine-kind';
export * from './engine';
