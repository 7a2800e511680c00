// The one read+list SAS of a container that restoring servers read with. A user delegation SAS when
// the client signs in with Entra ID, an account-key SAS when it holds a key. Never logged, never in a
// workflow input or history: an activity asks the worker's wiring for it when a restore starts.
import {
  BlobServiceClient,
  ContainerSASPermissions,
  generateBlobSASQueryParameters,
  SASProtocol,
  StorageSharedKeyCredential,
  type ContainerClient,
} from '@azure/storage-blob';

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
/** "A single LRS job can run for a maximum of 30 days" (Overview of Log Replay Service, Limitations). */
export const LRS_MAX_DAYS = 30;
/** A user delegation key lives at most seven days (Create a user delegation SAS, Get User Delegation Key). */
const USER_DELEGATION_MAX_MS = 7 * DAY;

export interface SasWindow {
  startsOn: Date;
  expiresOn: Date;
}

/**
 * The validity of the container's SAS at `now`, for restores that may run `restoreMinutes` (capped at
 * the LRS maximum of 30 days). Windows are aligned on multiples of that time, so every worker in the
 * same window signs the same start and expiry, hence (with the account key) the very same token: the
 * restores that run in parallel into one container all present one SAS. A restore started anywhere in
 * a window has at least `restoreMinutes` of validity left.
 */
export function sasWindow(restoreMinutes: number, now = Date.now()): SasWindow {
  const span = Math.min(Math.ceil(restoreMinutes) * MINUTE, LRS_MAX_DAYS * DAY);
  const start = Math.floor(now / span) * span;
  // Started a little earlier: a restoring server whose clock runs behind still accepts it.
  return { startsOn: new Date(start - 15 * MINUTE), expiresOn: new Date(start + 2 * span) };
}

export async function containerReadSas(container: ContainerClient, window: SasWindow): Promise<string> {
  const common = {
    containerName: container.containerName,
    permissions: ContainerSASPermissions.parse('rl'),
    startsOn: window.startsOn,
    expiresOn: window.expiresOn,
    protocol: container.url.startsWith('https:') ? SASProtocol.Https : SASProtocol.HttpsAndHttp,
  };
  if (container.credential instanceof StorageSharedKeyCredential) return generateBlobSASQueryParameters(common, container.credential).toString();
  const client = new BlobServiceClient(new URL(container.url).origin, container.credential as never);
  const expiresOn = new Date(Math.min(window.expiresOn.getTime(), Date.now() + USER_DELEGATION_MAX_MS - MINUTE));
  const key = await client.getUserDelegationKey(window.startsOn, expiresOn);
  return generateBlobSASQueryParameters({ ...common, expiresOn }, key, client.accountName).toString();
}

/**
 * The container's read access for restores, built once per worker: the one SAS of the current window,
 * made on first use and handed out again to every restore into this container until its window ends.
 */
export class ContainerReadAccess {
  private current?: { window: SasWindow; token: Promise<string> };

  constructor(
    readonly container: ContainerClient,
    private readonly clock: () => number = Date.now,
  ) {}

  /** The SAS and when it expires, for a restore that may run `restoreMinutes`. */
  async sas(restoreMinutes: number): Promise<{ token: string; expiresOn: Date }> {
    const window = sasWindow(restoreMinutes, this.clock());
    if (this.current?.window.startsOn.getTime() !== window.startsOn.getTime() || this.current.window.expiresOn.getTime() !== window.expiresOn.getTime()) {
      const token = containerReadSas(this.container, window);
      this.current = { window, token };
      token.catch(() => (this.current = undefined));
    }
    const token = await this.current.token;
    return { token, expiresOn: new Date(new URLSearchParams(token).get('se') ?? window.expiresOn.toISOString()) };
  }
}
