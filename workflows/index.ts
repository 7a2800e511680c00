// The workflows a worker registers.
export { migrateTenant } from './migrate-tenant';
export { migrationWave } from './migration-wave';
