// Checks a tenant's tracking mapping (the fleet file's `tracking`) against its real schema, so a
// mapping that names a column the table lacks is found before the first event, not by a 500.
import type { TableInfo, TrackingEvent, TrackingMapping } from './engine';

/** What is wrong with `mapping` for a database with these tables; empty when it fits. */
export function trackingMappingProblems(tables: TableInfo[], mapping: TrackingMapping): string[] {
  const table = tables.find((t) => t.name === mapping.table);
  if (!table) return [`tracking.table: the database has no table "${mapping.table}" (tables: ${tables.map((t) => t.name).join(', ') || 'none'}); name the tenant's tracking table`];
  const problems: string[] = [];
  for (const [field, column] of Object.entries(mapping.columns) as [keyof TrackingEvent, string | null][]) {
    if (column !== null && !table.columns.includes(column))
      problems.push(`tracking.columns.${field}: table "${table.name}" has no column "${column}" (columns: ${table.columns.join(', ')}); map ${field} to one of them, or to null to drop it`);
  }
  const id = mapping.columns.event_id;
  if (id && table.uniqueKeys && table.columns.includes(id) && !table.uniqueKeys.some((k) => k.length === 1 && k[0] === id))
    problems.push(`tracking.columns.event_id: column "${id}" of "${table.name}" has no unique index, so an event sent twice would be stored twice; add one (CREATE UNIQUE INDEX … ON "${table.name}" ("${id}")) or map event_id to a unique column`);
  return problems;
}
