export type { ComputeBackend, DeviceChoice, HostArray, TaskArithmeticParams, TaskVectorMask } from './types';
export { hostArray, sliceHost, hostBytes, bytesPerElement, MAX_TASK_MODELS } from './types';
export { ReferenceBackend } from './reference';
export { WasmBackend, wasmSimdAvailable, type WasmBackendOptions } from './wasm-backend';
export { WebGpuBackend, GpuDeviceLostError, openWebGpu, type WebGpuOptions, type GpuAdapterDescription } from './webgpu-backend';
export { selectBackend, FallbackBackend, type SelectBackendParams, type SelectedBackend } from './select-backend';
