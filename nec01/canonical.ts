// Canonical JSON for the `attest` command's custom data: the service puts
// SHA-256(canonical JSON) in user_data, and a client recomputes it from the data it sent.
// Object keys sorted by UTF-16 code units and no whitespace (the RFC 8785 ordering);
// numbers as ECMAScript prints them, which is what RFC 8785 specifies. Strings must be
// well-formed Unicode (RFC 8785 takes I-JSON input): JSON.stringify would write a lone
// surrogate as an escape that other JCS implementations reject or encode differently.

/** a lone (unpaired) UTF-16 surrogate: in a `u` regex a valid pair is one code point */
const LONE_SURROGATE = /\p{Cs}/u

function canonicalString(text: string): string {
  if (LONE_SURROGATE.test(text)) throw new TypeError('canonical JSON has no lone surrogates (strings must be valid Unicode)')
  return JSON.stringify(text)
}

export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean') return JSON.stringify(value)
  if (typeof value === 'string') return canonicalString(value)
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError('canonical JSON has no NaN or Infinity')
    return JSON.stringify(value)
  }
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v)).join(',')}]`
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return `{${entries.map(([k, v]) => `${canonicalString(k)}:${canonicalJson(v)}`).join(',')}}`
  }
  throw new TypeError(`canonical JSON cannot encode a ${typeof value}`)
}
