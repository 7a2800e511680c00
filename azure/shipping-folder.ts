// The tenant's artifact folder as log shipping sees it: the names in it, and an upload that is skipped
// for a blob already committed with the same content (uploadResumable's deterministic block ids).
import type { ContainerClient } from '@azure/storage-blob';
import { uploadResumable, type TransferOptions } from './block-upload';
import type { ShippingFolder } from '../protocol/log-shipping';

export function blobShippingFolder(container: ContainerClient, folder: string, options: TransferOptions & { metadata?: Record<string, string> }): ShippingFolder {
  return {
    async list() {
      const names: string[] = [];
      for await (const blob of container.listBlobsFlat({ prefix: `${folder}/` })) names.push(blob.name.slice(folder.length + 1));
      return names;
    },
    async upload(localFile, name) {
      await uploadResumable(container, `${folder}/${name}`, localFile, options);
    },
  };
}
