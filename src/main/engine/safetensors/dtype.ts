/** safetensors dtype names and their element sizes in bytes. */
export const DTYPE_SIZES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
} as const;

export type Dtype = keyof typeof DTYPE_SIZES;

/** Dtypes the engine computes on; every other dtype is passed through byte for byte. */
export type FloatDtype = 'F32' | 'F16' | 'BF16';

export function isDtype(value: string): value is Dtype {
  return Object.prototype.hasOwnProperty.call(DTYPE_SIZES, value);
}

export function isFloatDtype(dtype: Dtype): dtype is FloatDtype {
  return dtype === 'F32' || dtype === 'F16' || dtype === 'BF16';
}

export function dtypeSize(dtype: Dtype): number {
  return DTYPE_SIZES[dtype];
}

/** mergekit / torch dtype names as they appear in recipes and config.json. */
const TORCH_NAMES: Record<string, FloatDtype> = {
  float32: 'F32',
  float: 'F32',
  fp32: 'F32',
  float16: 'F16',
  half: 'F16',
  fp16: 'F16',
  bfloat16: 'BF16',
  bf16: 'BF16',
};

export function parseTorchDtype(name: string): FloatDtype | undefined {
  return TORCH_NAMES[name.replace(/^torch\./, '')];
}

export function torchDtypeName(dtype: FloatDtype): string {
  return dtype === 'F32' ? 'float32' : dtype === 'F16' ? 'float16' : 'bfloat16';
}
