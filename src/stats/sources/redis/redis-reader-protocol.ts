/** Messages between RedisSource (main thread) and its reader worker (redis-reader.ts). */

/** Where the worker connects; the password stays in memory, never in a message or a log line. */
export interface ReaderInit {
  host: string;
  port: number;
  password: string | null;
  tls: boolean;
  /** Int32 slots shared by both threads: batches consumed (main adds), reader paused (reader sets). */
  flow: SharedArrayBuffer;
}

/** Slots of ReaderInit.flow. */
export const CONSUMED = 0;
export const PAUSED = 1;
export const FLOW_BYTES = 8;

/** Worker → main: a batch of raw messages, or what the ioredis client just did. */
export type ReaderMessage =
  | { type: 'batch'; buffer: ArrayBuffer; count: number }
  | { type: 'subscribed' | 'ready' | 'close' }
  | { type: 'error' | 'unavailable'; message: string };

/**
 * Main → worker: batches were consumed while the reader is paused (consumed batches are counted
 * in ReaderInit.flow, without a message: a trickle of events then costs one wake-up of the
 * reader per batch, not two); or disconnect and end.
 */
export type SourceCommand = { type: 'resume' } | { type: 'stop' };

/** Size of one batch; a message larger than this travels alone. */
export const BATCH_BYTES = 256 * 1024;
/** Batches handed over but not yet consumed before the worker stops reading the socket. */
export const MAX_BATCHES_IN_FLIGHT = 4;

// A batch is a run of entries: u32 channel length, u32 message length, channel bytes, message
// bytes (lengths little endian). The reader writes them with writeEntry, RedisSource reads them
// with forEachEntry.

/** Bytes one message takes in a batch. */
export function entryBytes(channel: Buffer, message: Buffer): number {
  return 8 + channel.length + message.length;
}

/** Writes one entry at buf[at] (room checked by the caller with entryBytes); returns where it ends. */
export function writeEntry(buf: Buffer, at: number, channel: Buffer, message: Buffer): number {
  writeLength(buf, at, channel.length);
  writeLength(buf, at + 4, message.length);
  buf.set(channel, at + 8);
  buf.set(message, at + 8 + channel.length);
  return at + 8 + channel.length + message.length;
}

/** Calls fn(buffer, channelStart, channelEnd, messageEnd) for each entry of a batch. */
export function forEachEntry(
  buf: Buffer,
  fn: (buf: Buffer, channelStart: number, channelEnd: number, messageEnd: number) => void,
): void {
  let at = 0;
  while (at < buf.length) {
    const channelLength = readLength(buf, at);
    const messageLength = readLength(buf, at + 4);
    const channelStart = at + 8;
    const channelEnd = channelStart + channelLength;
    at = channelEnd + messageLength;
    fn(buf, channelStart, channelEnd, at);
  }
}

/** u32 little endian, without writeUInt32LE's argument checks (this runs twice per event). */
function writeLength(buf: Buffer, at: number, n: number): void {
  buf[at] = n;
  buf[at + 1] = n >>> 8;
  buf[at + 2] = n >>> 16;
  buf[at + 3] = n >>> 24;
}

/** u32 little endian, as writeLength put it. */
function readLength(buf: Buffer, at: number): number {
  return (buf[at] | (buf[at + 1] << 8) | (buf[at + 2] << 16)) + buf[at + 3] * 0x1000000;
}
