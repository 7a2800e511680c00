// Where an artifact lives in the container. Pure naming, shared by the copy, the restore, the clean-up
// and `reconcile`.

/**
 * One flat folder per database and migration, `<tenant>.<migration>`: the Log Replay Service restores
 * one database from one folder given by its full URI and reads no nested folders. `.` is in neither a
 * tenant id nor a migration id, so a folder names exactly one tenant and one migration.
 */
export const artifactFolder = (tenantId: string, migrationId: string): string => `${tenantId}.${migrationId}`;

export const artifactBlobName = (tenantId: string, migrationId: string, file: string): string => `${artifactFolder(tenantId, migrationId)}/${file}`;

/** The start of the name of every folder of one tenant, whatever its migration. */
export const tenantFolderPrefix = (tenantId: string): string => `${tenantId}.`;

/** The migration a blob of `tenantId` belongs to, read from its folder. */
export const migrationOfBlob = (tenantId: string, blobName: string): string => blobName.split('/')[0].slice(tenantFolderPrefix(tenantId).length);
