import type { AlloyApi, Channel, EventName, EventTypes, RequestOf, ResponseOf } from '../../shared/contract';

declare global {
  interface Window {
    alloy?: AlloyApi;
  }
}

/** The contract over HTTP and a WebSocket, for the web mode; the same interface as Electron's preload. */
export function createWebBridge(base = window.location): AlloyApi {
  const token = new URLSearchParams(base.search).get('token') ?? '';
  const headers: Record<string, string> = { 'content-type': 'application/json', ...(token ? { 'x-alloy-token': token } : {}) };
  const listeners = new Map<EventName, Set<(payload: unknown) => void>>();
  let socket: WebSocket | undefined;
  const connect = () => {
    const url = `${base.protocol === 'https:' ? 'wss' : 'ws'}://${base.host}/api/events${token ? `?token=${encodeURIComponent(token)}` : ''}`;
    socket = new WebSocket(url);
    socket.onmessage = (message) => {
      const { event, payload } = JSON.parse(String(message.data)) as { event: EventName; payload: unknown };
      for (const listener of listeners.get(event) ?? []) listener(payload);
    };
    socket.onclose = () => setTimeout(connect, 1000);
  };
  connect();
  return {
    async invoke<C extends Channel>(channel: C, request: RequestOf<C>): Promise<ResponseOf<C>> {
      const response = await fetch(`/api/invoke/${channel}`, { method: 'POST', headers, body: JSON.stringify(request) });
      const body = (await response.json()) as { result?: ResponseOf<C>; error?: string };
      if (!response.ok) throw new Error(body.error ?? `${channel} failed (${response.status})`);
      return body.result as ResponseOf<C>;
    },
    on<E extends EventName>(event: E, listener: (payload: EventTypes[E]) => void) {
      let set = listeners.get(event);
      if (!set) listeners.set(event, (set = new Set()));
      set.add(listener as (payload: unknown) => void);
      return () => set.delete(listener as (payload: unknown) => void);
    },
  };
}

/** `window.alloy` in Electron, the web bridge in a browser. */
export function connectApi(): AlloyApi {
  return window.alloy ?? createWebBridge();
}
