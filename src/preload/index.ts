import { contextBridge, ipcRenderer } from 'electron';
import type { AlloyApi, EventName } from '../shared/contract';

/** Exactly the contract, nothing else: `invoke` on one channel and event subscriptions. */
const api: AlloyApi = {
  invoke: (channel, request) => ipcRenderer.invoke('alloy:invoke', channel, request),
  on(event, listener) {
    const handler = (_: unknown, name: EventName, payload: unknown) => {
      if (name === event) listener(payload as never);
    };
    ipcRenderer.on('alloy:event', handler);
    return () => ipcRenderer.removeListener('alloy:event', handler);
  },
};

contextBridge.exposeInMainWorld('alloy', api);
