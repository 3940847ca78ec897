// Validation time: options.now is a Date or unix seconds (VerifyOptions). Internally the
// verifier compares milliseconds, because certificate times are exact seconds and a Date
// can fall between two of them.
import { VerifyError } from './result.js'

/** Validation time in milliseconds since the epoch. Throws VerifyError('input') on a bad value. */
export function toUnixMillis(now?: Date | number): number {
  if (now === undefined) return Date.now()
  if (now instanceof Date) {
    const ms = now.getTime()
    if (Number.isFinite(ms)) return ms
    throw new VerifyError('input', 'options.now is an invalid Date')
  }
  if (typeof now === 'number' && Number.isFinite(now) && now >= 0) {
    const ms = now * 1000
    // ECMAScript time values end at ±8.64e15 ms (ECMA-262 §21.4.1.1): beyond that no Date exists
    if (ms <= 8.64e15) return ms
  }
  throw new VerifyError('input', 'options.now must be a Date or unix seconds')
}

/** Validation time in unix seconds (fractional for a Date with milliseconds). */
export function toUnixSeconds(now?: Date | number): number {
  return toUnixMillis(now) / 1000
}

/** ISO 8601 in UTC, without the milliseconds when they are zero. */
export function isoTime(ms: number): string {
  const iso = new Date(ms).toISOString()
  return iso.endsWith('.000Z') ? iso.slice(0, -5) + 'Z' : iso
}

/** isoTime for unix seconds (certificate and event times). */
export function isoSeconds(unixSeconds: number): string {
  return isoTime(unixSeconds * 1000)
}
