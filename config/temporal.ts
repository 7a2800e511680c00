// Where Temporal is: the usual environment variables, so any cluster or Temporal Cloud works.
import { TemporalConfigError } from '../protocol/errors';
import { readFileSync } from 'node:fs';

export interface TemporalSettings {
  address: string;
  namespace: string;
  apiKey?: string;
  tls?: { clientCertPair?: { crt: Buffer; key: Buffer } } | boolean;
}

export { TemporalConfigError };

function readPem(env: NodeJS.ProcessEnv, name: string): Buffer {
  const file = env[name]!;
  try {
    return readFileSync(file);
  } catch (err) {
    throw new TemporalConfigError(`${name}: cannot read ${file} (${(err as NodeJS.ErrnoException).code}); point it at a PEM file`);
  }
}

/**
 * TEMPORAL_ADDRESS (host:port), TEMPORAL_NAMESPACE, TEMPORAL_API_KEY (Temporal Cloud; implies TLS),
 * TEMPORAL_TLS_CERT + TEMPORAL_TLS_KEY (mTLS client certificate files), TEMPORAL_TLS=true.
 */
export function temporalSettingsFromEnv(env: NodeJS.ProcessEnv = process.env, fallbackAddress = 'localhost:7233'): TemporalSettings {
  const address = env.TEMPORAL_ADDRESS || fallbackAddress;
  if (!/^[^\s:]+:\d+$/.test(address)) throw new TemporalConfigError(`TEMPORAL_ADDRESS: "${address}" is not host:port (e.g. localhost:7233)`);
  const hasCert = Boolean(env.TEMPORAL_TLS_CERT), hasKey = Boolean(env.TEMPORAL_TLS_KEY);
  if (hasCert !== hasKey) throw new TemporalConfigError('TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY go together; set both or neither');
  const tls = hasCert
    ? { clientCertPair: { crt: readPem(env, 'TEMPORAL_TLS_CERT'), key: readPem(env, 'TEMPORAL_TLS_KEY') } }
    : env.TEMPORAL_API_KEY || env.TEMPORAL_TLS === 'true'
      ? true
      : undefined;
  return { address, namespace: env.TEMPORAL_NAMESPACE || 'default', apiKey: env.TEMPORAL_API_KEY || undefined, tls };
}
