// Run as its own process by tests/azure: uploads one artifact and reports each block, so the test
// can kill it half way with SIGKILL. The connection string comes from the environment.
import { BlobServiceClient } from '@azure/storage-blob';
import { uploadResumable } from '../../azure/block-upload';

const [container, blobName, file, blockSize] = process.argv.slice(2);
const client = BlobServiceClient.fromConnectionString(process.env.AIRLIFT_CHILD_STORAGE!).getContainerClient(container);
uploadResumable(client, blobName, file, {
  blockSizeBytes: Number(blockSize),
  concurrency: 2,
  maxMiBps: 2,
  onProgress: (done, total) => process.stdout.write(`progress ${done} ${total}\n`),
}).then(() => process.stdout.write('finished\n'));
