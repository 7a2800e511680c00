// Turns request bodies and pixel query strings into tracking events, or says exactly what is wrong.
import { randomBytes } from 'node:crypto';
import type { TrackingEvent } from '../engines/engine';

export const MAX_BODY_BYTES = 64 * 1024;
export const MAX_BATCH = 500;
/** How deep a field's value (in practice `payload`) may nest: a deeper document is refused unparsed. */
export const MAX_PAYLOAD_DEPTH = 32;
export const MAX_PAYLOAD_BYTES = 8 * 1024;
/** A pixel URL carries a few parameters; Node itself refuses a request line over 16 KiB (431). */
export const MAX_PIXEL_PARAMS = 50;
const EVENT_ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;
const KIND = /^[a-z][a-z0-9_]{0,31}$/;
const FIELDS = new Set(['event_id', 'kind', 'ad_id', 'occurred_at', 'payload']);

export class BadEventError extends Error {
  override name = 'BadEventError';
}

/** UUIDv7: 48 bits of Unix milliseconds, then randomness, so ids sort by arrival time. */
export function uuidv7(now = Date.now()): string {
  const bytes = randomBytes(16);
  bytes.writeUIntBE(now, 0, 6);
  bytes[6] = (bytes[6] & 0x0f) | 0x70;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function toEvent(raw: unknown, at: string, userAgent: string | null): TrackingEvent {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new BadEventError(`${at}: an event must be a JSON object`);
  const e = raw as Record<string, unknown>;
  const unknown = Object.keys(e).filter((k) => !FIELDS.has(k));
  if (unknown.length) throw new BadEventError(`${at}: unknown field ${unknown.map((k) => `"${k}"`).join(', ')} (allowed: ${[...FIELDS].join(', ')}; put anything else in payload)`);
  if (e.event_id !== undefined && (typeof e.event_id !== 'string' || !EVENT_ID.test(e.event_id)))
    throw new BadEventError(`${at}.event_id: must be a string of 1-64 letters, digits, _ . : - (or left out to get a UUIDv7)`);
  if (typeof e.kind !== 'string' || !KIND.test(e.kind)) throw new BadEventError(`${at}.kind: required, a lowercase word such as "click" or "view"`);
  if (e.ad_id !== undefined && e.ad_id !== null && !(Number.isSafeInteger(e.ad_id) && (e.ad_id as number) >= 0))
    throw new BadEventError(`${at}.ad_id: must be a non-negative integer or null`);
  if (e.occurred_at !== undefined && (typeof e.occurred_at !== 'string' || Number.isNaN(Date.parse(e.occurred_at))))
    throw new BadEventError(`${at}.occurred_at: must be an ISO-8601 timestamp such as 2026-11-27T10:00:00Z`);
  // Safe to stringify: parseEventBody refused any value nested deeper than MAX_PAYLOAD_DEPTH.
  const payload = e.payload === undefined || e.payload === null ? null : JSON.stringify(e.payload);
  if (payload && Buffer.byteLength(payload) > MAX_PAYLOAD_BYTES) throw new BadEventError(`${at}.payload: larger than ${MAX_PAYLOAD_BYTES / 1024} KiB`);
  return {
    event_id: (e.event_id as string | undefined) ?? uuidv7(),
    kind: e.kind,
    ad_id: (e.ad_id as number | null | undefined) ?? null,
    occurred_at: (e.occurred_at as string | undefined) ?? new Date().toISOString(),
    user_agent: userAgent ? userAgent.slice(0, 512) : null,
    payload,
  };
}

interface OpenContainer {
  /** Where it sits in the document, e.g. `events[2].payload`. */
  path: string;
  array: boolean;
  index: number;
  key: string;
  expectKey: boolean;
}

/**
 * The path of the first event field whose value nests deeper than MAX_PAYLOAD_DEPTH, found by one
 * pass over the text that neither recurses nor parses: no bracket count can exhaust the stack here,
 * in JSON.parse, or in the JSON.stringify of the payload afterwards. Malformed text is left to
 * JSON.parse to name; only its nesting is measured here.
 */
function tooDeep(text: string): string | undefined {
  const open: OpenContainer[] = [];
  let eventDepth = 1; // 1 for a single event, 2 inside a batch array
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    const top = open[open.length - 1];
    if (c === '"') {
      let end = i + 1;
      while (end < text.length && text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      if (top && !top.array && top.expectKey) {
        const raw = text.slice(i, end + 1);
        try {
          top.key = String(JSON.parse(raw)).slice(0, 64);
        } catch {
          top.key = raw.slice(1, 65);
        }
        top.expectKey = false;
      }
      i = end;
    } else if (c === '[' || c === '{') {
      if (open.length === 0) eventDepth = c === '[' ? 2 : 1;
      const path = !top ? (c === '[' ? 'events' : 'event') : top.array ? `${top.path}[${top.index}]` : `${top.path}.${top.key}`;
      if (open.length - eventDepth >= MAX_PAYLOAD_DEPTH) {
        // Name the event field (`events[0].payload`), not the bracket where the limit was crossed.
        return open[Math.min(eventDepth, open.length - 1)]?.path ?? path;
      }
      open.push({ path, array: c === '[', index: 0, key: '', expectKey: c === '{' });
    } else if (c === ']' || c === '}') {
      open.pop();
    } else if (c === ',' && top) {
      top.index++;
      top.expectKey = !top.array;
    }
  }
  return undefined;
}

/** A POST body: one event or an array, as JSON or the text/plain that navigator.sendBeacon sends. */
export function parseEventBody(text: string, userAgent: string | null): TrackingEvent[] {
  if (Buffer.byteLength(text) > MAX_BODY_BYTES) throw new BadEventError(`body: larger than ${MAX_BODY_BYTES} bytes; send smaller batches`);
  const deep = tooDeep(text);
  if (deep) throw new BadEventError(`${deep}: nested deeper than ${MAX_PAYLOAD_DEPTH} levels; flatten it`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new BadEventError('body: not valid JSON');
  }
  const list = Array.isArray(doc) ? doc : [doc];
  if (list.length === 0) throw new BadEventError('body: an empty batch');
  if (list.length > MAX_BATCH) throw new BadEventError(`body: ${list.length} events in one batch; at most ${MAX_BATCH}`);
  const events = list.map((raw, i) => toEvent(raw, Array.isArray(doc) ? `events[${i}]` : 'event', userAgent));
  const ids = new Set<string>();
  for (const e of events) {
    if (ids.has(e.event_id)) throw new BadEventError(`body: event_id "${e.event_id}" appears twice in one batch`);
    ids.add(e.event_id);
  }
  return events;
}

/** A pixel hit: kind, ad_id and event_id from the query; every other parameter goes into payload. */
export function parsePixelQuery(query: Record<string, string>, userAgent: string | null): TrackingEvent {
  const count = Object.keys(query).length;
  if (count > MAX_PIXEL_PARAMS) throw new BadEventError(`query: ${count} parameters; at most ${MAX_PIXEL_PARAMS}`);
  const { kind = 'view', ad_id, event_id, occurred_at, ...rest } = query;
  const adId = ad_id === undefined || ad_id === '' ? undefined : /^\d+$/.test(ad_id) ? Number(ad_id) : NaN;
  return toEvent(
    { kind, ...(adId === undefined ? {} : { ad_id: Number.isNaN(adId) ? ad_id : adId }), ...(event_id ? { event_id } : {}), ...(occurred_at ? { occurred_at } : {}), ...(Object.keys(rest).length ? { payload: rest } : {}) },
    'query',
    userAgent,
  );
}
