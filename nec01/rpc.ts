// The JSON-RPC transport for programs (docs/protocol.md): NIP-44 encrypted
// { id, method, params } in an ephemeral event, p-tagged to the service; the answer is
// { id, result } or { id, error: { code, message } } in the same kind, p-tagged back and
// e-tagged to the request.

export { RPC_KIND } from './kinds.js'

export const RPC_ERROR_CODES = ['RATE_LIMITED', 'NOT_IMPLEMENTED', 'UNAUTHORIZED', 'INVALID_REQUEST', 'INTERNAL', 'RESTRICTED'] as const
export type RpcErrorCode = (typeof RPC_ERROR_CODES)[number]

export interface RpcRequest {
  id: string
  method: string
  params: unknown
}

export type RpcResponse = { id: string; result: unknown } | { id: string; error: { code: RpcErrorCode; message: string } }

const MAX_ID_LENGTH = 128
const MAX_METHOD_LENGTH = 64

/** Parses a decrypted request; null when it is not a JSON-RPC request of ours. */
export function parseRpcRequest(text: string): RpcRequest | null {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return null
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null
  const v = value as { id?: unknown; method?: unknown; params?: unknown }
  if (typeof v.id !== 'string' || v.id.length === 0 || v.id.length > MAX_ID_LENGTH) return null
  if (typeof v.method !== 'string' || !/^[a-z_][a-z0-9_]*$/.test(v.method) || v.method.length > MAX_METHOD_LENGTH) return null
  return { id: v.id, method: v.method, params: v.params ?? {} }
}

/** Parses a decrypted response; null when malformed. */
export function parseRpcResponse(text: string): RpcResponse | null {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return null
  }
  if (typeof value !== 'object' || value === null) return null
  const v = value as { id?: unknown; result?: unknown; error?: { code?: unknown; message?: unknown } }
  if (typeof v.id !== 'string') return null
  if (v.error !== undefined) {
    const code = v.error?.code
    if (typeof code !== 'string' || !(RPC_ERROR_CODES as readonly string[]).includes(code) || typeof v.error?.message !== 'string') return null
    return { id: v.id, error: { code: code as RpcErrorCode, message: v.error.message } }
  }
  return 'result' in v ? { id: v.id, result: v.result } : null
}
