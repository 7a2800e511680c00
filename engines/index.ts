// Chooses the engine for an endpoint of the fleet file.
import type { Engine } from './engine';
import { SqliteEngine } from './sqlite';

export interface EndpointConfig {
  engine: 'sqlite';
  directory: string;
}

export function createEngine(endpoint: EndpointConfig): Engine {
  switch (endpoint.engine) {
    case 'sqlite':
      return new SqliteEngine(endpoint.directory);
  }
}

export * from './engine';
