import type { EventName, EventTypes } from '../../shared/contract';

type Listener<E extends EventName> = (payload: EventTypes[E]) => void;

/** The services' push channel: jobs emit here, every face (IPC, WebSocket, tests) listens. */
export class EventBus {
  private listeners = new Map<EventName, Set<Listener<EventName>>>();

  on<E extends EventName>(event: E, listener: Listener<E>): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener as Listener<EventName>);
    return () => set.delete(listener as Listener<EventName>);
  }

  emit<E extends EventName>(event: E, payload: EventTypes[E]): void {
    for (const listener of this.listeners.get(event) ?? []) listener(payload);
  }
}
