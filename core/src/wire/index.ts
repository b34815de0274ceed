/**
 * The batch wire format: safetensors blobs carrying a batch's tensors and its metadata (job,
 * epoch, rank, step, sample ids). See docs/wire-format.md.
 */
export {
  BatchEncoder,
  MAX_HEADER_BYTES,
  SAFETENSORS_DTYPE,
  decodeBatch,
  decodeSafetensors,
  encodeBatch,
  encodeSafetensors,
  encodeSafetensorsInto,
  encodedSafetensorsSize,
  encodedSize,
} from './safetensors.ts';
export type { DecodeSafetensorsOptions, DecodedBatch, DecodedSafetensors, SafetensorsDType } from './safetensors.ts';
export {
  BATCH_METADATA_KEYS,
  WIRE_VERSION,
  batchMetadataFromStrings,
  batchMetadataToStrings,
  parseSampleIds,
} from './batch-metadata.ts';
export type { BatchMetadata, BatchMetadataKey, DecodedBatchMetadata } from './batch-metadata.ts';
