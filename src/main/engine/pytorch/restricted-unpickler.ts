/**
 * A pickle reader for PyTorch checkpoints that builds data only: dicts, lists, tuples, strings,
 * numbers, and the few torch globals that describe tensors. Any other global (os.system,
 * builtins.eval, …) is refused before anything is called, so a hostile checkpoint cannot run code.
 */

export interface StorageRef {
  kind: 'storage';
  storageType: string;
  key: string;
  numel: number;
}

export interface TensorRef {
  kind: 'tensor';
  storage: StorageRef;
  storageOffset: number;
  shape: number[];
  stride: number[];
}

type Callable = (args: unknown[]) => unknown;

const ORDERED_DICT = 'collections.OrderedDict';
export const STORAGE_TYPES = new Set(['FloatStorage', 'HalfStorage', 'BFloat16Storage', 'DoubleStorage', 'LongStorage', 'IntStorage', 'ShortStorage', 'CharStorage', 'ByteStorage', 'BoolStorage']);

class Global {
  constructor(
    readonly name: string,
    readonly call: Callable | undefined,
  ) {}
}

const MARK = Symbol('mark');

export class UnpicklingError extends Error {}

function allowedGlobal(module: string, name: string): Global {
  const full = `${module}.${name}`;
  if (full === ORDERED_DICT) return new Global(full, () => new Map());
  if (full === 'torch._utils._rebuild_tensor_v2') return new Global(full, rebuildTensor);
  if (full === 'torch._utils._rebuild_parameter') return new Global(full, (args) => asTensor(args[0]));
  if (module === 'torch' && STORAGE_TYPES.has(name)) return new Global(full, undefined);
  throw new UnpicklingError(`refuses the global ${full}: only tensor data may be loaded`);
}

function rebuildTensor(args: unknown[]): TensorRef {
  const [storage, storageOffset, shape, stride] = args;
  if (!(storage && typeof storage === 'object' && (storage as StorageRef).kind === 'storage')) throw new UnpicklingError('_rebuild_tensor_v2 without a storage');
  if (typeof storageOffset !== 'number' || !isIntTuple(shape) || !isIntTuple(stride)) throw new UnpicklingError('_rebuild_tensor_v2 with malformed arguments');
  return { kind: 'tensor', storage: storage as StorageRef, storageOffset, shape, stride };
}

function asTensor(value: unknown): TensorRef {
  if (value && typeof value === 'object' && (value as TensorRef).kind === 'tensor') return value as TensorRef;
  throw new UnpicklingError('_rebuild_parameter of something that is not a tensor');
}

function isIntTuple(value: unknown): value is number[] {
  return Array.isArray(value) && value.every((v) => Number.isSafeInteger(v) && v >= 0);
}

function persistentLoad(pid: unknown): StorageRef {
  if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5) throw new UnpicklingError('unknown persistent id');
  const [, type, key, , numel] = pid as [string, unknown, unknown, unknown, unknown];
  if (!(type instanceof Global) || !STORAGE_TYPES.has(type.name.slice('torch.'.length))) throw new UnpicklingError('persistent id without a storage type');
  if (typeof key !== 'string' || !/^[0-9A-Za-z_]+$/.test(key) || !Number.isSafeInteger(numel)) throw new UnpicklingError('malformed storage reference');
  return { kind: 'storage', storageType: type.name.slice('torch.'.length), key, numel: numel as number };
}

/** Unpickles `bytes` (protocols 2–5, the opcodes torch.save uses), returning the top-level object. */
export function unpickle(bytes: Uint8Array): unknown {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stack: unknown[] = [];
  const memo = new Map<number, unknown>();
  const text = new TextDecoder('utf-8', { fatal: true });
  let at = 0;
  const need = (n: number) => {
    if (at + n > bytes.length) throw new UnpicklingError('truncated pickle');
    const start = at;
    at += n;
    return start;
  };
  const popMark = (): unknown[] => {
    const i = stack.lastIndexOf(MARK);
    if (i < 0) throw new UnpicklingError('no mark on the stack');
    return stack.splice(i).slice(1);
  };
  const pop = (): unknown => {
    if (stack.length === 0 || stack[stack.length - 1] === MARK) throw new UnpicklingError('stack underflow');
    return stack.pop();
  };
  const top = (): unknown => stack[stack.length - 1];
  const str = (n: number) => text.decode(bytes.subarray(need(n), at));
  const line = () => {
    const end = bytes.indexOf(0x0a, at);
    if (end < 0) throw new UnpicklingError('truncated pickle');
    const s = text.decode(bytes.subarray(at, end));
    at = end + 1;
    return s;
  };
  const setItems = (target: unknown, items: unknown[]) => {
    if (!(target instanceof Map)) throw new UnpicklingError('SETITEM on something that is not a dict');
    for (let i = 0; i + 1 < items.length; i += 2) target.set(items[i], items[i + 1]);
  };
  for (;;) {
    const op = bytes[need(1)]!;
    switch (op) {
      case 0x80: need(1); break; // PROTO
      case 0x95: need(8); break; // FRAME
      case 0x2e: return pop(); // STOP
      case 0x28: stack.push(MARK); break;
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x29: stack.push([]); break; // EMPTY_TUPLE
      case 0x74: stack.push(popMark()); break; // TUPLE
      case 0x85: stack.push([pop()]); break;
      case 0x86: { const b = pop(); stack.push([pop(), b]); break; }
      case 0x87: { const c = pop(); const b = pop(); stack.push([pop(), b, c]); break; }
      case 0x71: memo.set(bytes[need(1)]!, top()); break; // BINPUT
      case 0x72: memo.set(view.getUint32(need(4), true), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x68: stack.push(fromMemo(memo, bytes[need(1)]!)); break; // BINGET
      case 0x6a: stack.push(fromMemo(memo, view.getUint32(need(4), true))); break; // LONG_BINGET
      case 0x58: stack.push(str(view.getUint32(need(4), true))); break; // BINUNICODE
      case 0x8c: stack.push(str(bytes[need(1)]!)); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(str(Number(view.getBigUint64(need(8), true)))); break; // BINUNICODE8
      case 0x4b: stack.push(bytes[need(1)]!); break; // BININT1
      case 0x4d: stack.push(view.getUint16(need(2), true)); break; // BININT2
      case 0x4a: stack.push(view.getInt32(need(4), true)); break; // BININT
      case 0x8a: stack.push(long1(bytes.subarray(need(bytes[need(1)]!), at))); break; // LONG1
      case 0x47: stack.push(view.getFloat64(need(8), false)); break; // BINFLOAT
      case 0x88: stack.push(true); break;
      case 0x89: stack.push(false); break;
      case 0x4e: stack.push(null); break; // NONE
      case 0x63: { const module = line(); stack.push(allowedGlobal(module, line())); break; } // GLOBAL
      case 0x93: { const name = pop(); const module = pop(); stack.push(allowedGlobal(String(module), String(name))); break; } // STACK_GLOBAL
      case 0x51: stack.push(persistentLoad(pop())); break; // BINPERSID
      case 0x52: { // REDUCE
        const args = pop();
        const fn = pop();
        if (!(fn instanceof Global) || !fn.call || !Array.isArray(args)) throw new UnpicklingError(`refuses to call ${fn instanceof Global ? fn.name : 'a non-global'}`);
        stack.push(fn.call(args));
        break;
      }
      case 0x62: { // BUILD: only empty state, as tensors and OrderedDicts carry
        const state = pop();
        if (state !== null && !(state instanceof Map && state.size === 0) && !(Array.isArray(state) && state.length === 0)) throw new UnpicklingError('refuses to set object state');
        break;
      }
      case 0x73: { const value = pop(); const key = pop(); setItems(top(), [key, value]); break; } // SETITEM
      case 0x75: { const items = popMark(); setItems(top(), items); break; } // SETITEMS
      case 0x61: { const value = pop(); pushTo(top(), [value]); break; } // APPEND
      case 0x65: { const items = popMark(); pushTo(top(), items); break; } // APPENDS
      default:
        throw new UnpicklingError(`refuses pickle opcode 0x${op.toString(16)} at byte ${at - 1}`);
    }
  }
}

function fromMemo(memo: Map<number, unknown>, key: number): unknown {
  if (!memo.has(key)) throw new UnpicklingError(`memo ${key} read before it was written`);
  return memo.get(key);
}

function pushTo(target: unknown, items: unknown[]): void {
  if (!Array.isArray(target)) throw new UnpicklingError('APPEND on something that is not a list');
  target.push(...items);
}

function long1(bytes: Uint8Array): number {
  let value = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i]!);
  if (bytes.length > 0 && bytes[bytes.length - 1]! & 0x80) value -= 1n << BigInt(8 * bytes.length);
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) throw new UnpicklingError('integer too large');
  return Number(value);
}
