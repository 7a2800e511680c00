// A SAS for one container: read and list only, short-lived. A user delegation SAS when the client
// signs in with Entra ID, an account-key SAS when it holds a key. Never logged, never in a workflow.
import {
  BlobServiceClient,
  ContainerSASPermissions,
  generateBlobSASQueryParameters,
  SASProtocol,
  StorageSharedKeyCredential,
  type ContainerClient,
} from '@azure/storage-blob';

export async function containerReadSas(container: ContainerClient, validForMinutes: number): Promise<string> {
  const startsOn = new Date(Date.now() - 5 * 60_000); // clock skew
  const expiresOn = new Date(Date.now() + validForMinutes * 60_000);
  const common = {
    containerName: container.containerName,
    permissions: ContainerSASPermissions.parse('rl'),
    startsOn,
    expiresOn,
    protocol: container.url.startsWith('https:') ? SASProtocol.Https : SASProtocol.HttpsAndHttp,
  };
  if (container.credential instanceof StorageSharedKeyCredential) return generateBlobSASQueryParameters(common, container.credential).toString();
  const client = new BlobServiceClient(new URL(container.url).origin, container.credential as never);
  const key = await client.getUserDelegationKey(startsOn, expiresOn);
  return generateBlobSASQueryParameters(common, key, client.accountName).toString();
}
