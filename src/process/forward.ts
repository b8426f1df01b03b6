import type { EventEmitter } from 'node:events';

type EventMap<T> = Record<keyof T, unknown[]>;
interface Listens<T extends EventMap<T>> {
  on<K extends keyof T>(event: K, listener: (...args: T[K]) => void): unknown;
}
interface Emits<T extends EventMap<T>> {
  emit<K extends keyof T>(event: K, ...args: T[K]): boolean;
}

/**
 * Re-emit `event` of `from` on `to` with its arguments; returns the listener (for off()). `to`'s
 * events include `from`'s (U extends T). Listens/Emits state what EventEmitter<T> does, in a form
 * TypeScript can check for a generic T (node's own signatures resolve only for a concrete one).
 */
export function forward<T extends EventMap<T>, U extends T, K extends keyof T>(
  from: EventEmitter<T> & Listens<T>,
  to: EventEmitter<U> & Emits<T>,
  event: K,
): (...args: T[K]) => void {
  const listener = (...args: T[K]) => void to.emit(event, ...args);
  from.on(event, listener);
  return listener;
}
