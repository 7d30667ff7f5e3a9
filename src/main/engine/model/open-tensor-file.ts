import { openPytorchCheckpoint } from '../pytorch/pytorch-reader';
import { SafetensorsReader } from '../safetensors/reader';

/** A file of tensors, by its name: safetensors, or a PyTorch zip checkpoint (`.bin`, `.pt`, `.pth`). */
export function openTensorFile(path: string): Promise<SafetensorsReader> {
  return /\.(bin|pt|pth)$/i.test(path) ? openPytorchCheckpoint(path) : SafetensorsReader.open(path);
}
