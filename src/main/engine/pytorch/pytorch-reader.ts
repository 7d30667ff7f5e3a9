import { open } from 'node:fs/promises';
import { EngineError } from '../errors';
import { dtypeSize, type Dtype } from '../safetensors/dtype';
import { SafetensorsReader, readFully, type TensorEntry } from '../safetensors/reader';
import { unpickle, UnpicklingError, type TensorRef } from './restricted-unpickler';
import { readZipDirectory, type ZipEntry } from './zip-directory';

const STORAGE_DTYPES: Record<string, Dtype> = {
  FloatStorage: 'F32',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  DoubleStorage: 'F64',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};

const MAX_PICKLE_BYTES = 256 << 20;

/**
 * Opens a PyTorch checkpoint (`torch.save`'s zip format, e.g. pytorch_model.bin) without Python: the
 * pickle is read by a restricted unpickler that only rebuilds tensor descriptions, and each tensor is
 * found at its place in the archive, to be read positionally one at a time like a safetensors tensor
 * (mergekit's `--lazy-unpickle`, always on).
 */
export async function openPytorchCheckpoint(path: string): Promise<SafetensorsReader> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    const entries = await readZipDirectory(handle, path, size);
    const pickle = entries.find((e) => e.name.endsWith('/data.pkl') && e.name.split('/').length === 2);
    if (!pickle) throw new EngineError(`${path}: no data.pkl in the archive (a legacy, non-zip torch.save file is not supported)`, { file: path });
    if (pickle.size > MAX_PICKLE_BYTES) throw new EngineError(`${path}: data.pkl is ${pickle.size} bytes, more than a checkpoint's index can be`, { file: path });
    const prefix = pickle.name.slice(0, -'data.pkl'.length);
    await checkByteOrder(handle, path, entries, prefix);
    const bytes = new Uint8Array(pickle.size);
    await readFully(handle, bytes, pickle.dataOffset, path);
    let root: unknown;
    try {
      root = unpickle(bytes);
    } catch (error) {
      if (error instanceof UnpicklingError) throw new EngineError(`${path}: ${error.message}`, { file: path });
      throw error;
    }
    const tensors = tensorEntries(path, root, new Map(entries.map((e) => [e.name, e])), prefix);
    return SafetensorsReader.fromEntries(path, size, tensors, handle);
  } catch (error) {
    await handle.close();
    throw error;
  }
}

async function checkByteOrder(handle: import('node:fs/promises').FileHandle, path: string, entries: ZipEntry[], prefix: string): Promise<void> {
  const entry = entries.find((e) => e.name === `${prefix}byteorder`);
  if (!entry || entry.size > 16) return;
  const bytes = new Uint8Array(entry.size);
  await readFully(handle, bytes, entry.dataOffset, path);
  if (new TextDecoder().decode(bytes).trim() !== 'little') throw new EngineError(`${path}: a big-endian checkpoint`, { file: path });
}

function tensorEntries(path: string, root: unknown, entries: Map<string, ZipEntry>, prefix: string): Map<string, TensorEntry> {
  if (!(root instanceof Map)) throw new EngineError(`${path}: the checkpoint is not a dict of tensors`, { file: path });
  const tensors = new Map<string, TensorEntry>();
  for (const [name, value] of root) {
    if (typeof name !== 'string') throw new EngineError(`${path}: a tensor name that is not a string`, { file: path });
    if (!value || typeof value !== 'object' || (value as TensorRef).kind !== 'tensor') {
      throw new EngineError(`${path}: "${name}" is not a tensor`, { file: path, tensor: name });
    }
    tensors.set(name, tensorEntry(path, name, value as TensorRef, entries, prefix));
  }
  return tensors;
}

function tensorEntry(path: string, name: string, ref: TensorRef, entries: Map<string, ZipEntry>, prefix: string): TensorEntry {
  const fail = (why: string) => new EngineError(`${path}: tensor "${name}" ${why}`, { file: path, tensor: name });
  const dtype = STORAGE_DTYPES[ref.storage.storageType];
  if (!dtype) throw fail(`has storage type ${ref.storage.storageType}, which Alloy does not read`);
  const data = entries.get(`${prefix}data/${ref.storage.key}`);
  if (!data) throw fail(`names storage ${ref.storage.key}, which is not in the archive`);
  const size = dtypeSize(dtype);
  const numel = ref.shape.reduce((a, b) => a * b, 1);
  if (!isContiguous(ref.shape, ref.stride)) throw fail(`is a strided view (shape ${JSON.stringify(ref.shape)}, stride ${JSON.stringify(ref.stride)}); save it contiguous`);
  const byteLength = numel * size;
  const start = ref.storageOffset * size;
  if (ref.storage.numel * size > data.size || start + byteLength > ref.storage.numel * size) throw fail('runs past the end of its storage');
  return { name, dtype, shape: ref.shape, offset: data.dataOffset + start, byteLength, numel };
}

function isContiguous(shape: number[], stride: number[]): boolean {
  if (shape.length !== stride.length) return false;
  let expected = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== expected) return false;
    expected *= shape[i]!;
  }
  return true;
}
