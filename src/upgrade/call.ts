// One JSON-RPC call from one service to another over the relays (docs/protocol.md): the
// request NIP-44-encrypted to the callee and signed with the caller's key, the answer
// picked out by its e tag. The new build uses it to talk to the holder.
import { randomBytes } from 'node:crypto'
import { CodedError } from '../../nec01/errors.js'
import { parseRpcResponse, RPC_KIND, type RpcErrorCode } from '../../nec01/rpc.js'
import type { NostrEvent } from '../../nec01/types.js'
import type { RelayPool } from '../relays/pool.js'
import type { Identity } from '../service/identity.js'

export type CallErrorCode = RpcErrorCode | 'NO_RELAY' | 'NO_REPLY' | 'MALFORMED'

export class CallError extends CodedError<CallErrorCode> {}

export type RpcCaller = (method: string, params: unknown) => Promise<unknown>

export interface CallerOptions {
  pool: Pick<RelayPool, 'publish' | 'subscribe'>
  identity: Pick<Identity, 'pubkey' | 'sign' | 'nip44Encrypt' | 'nip44Decrypt'>
  /** hex pubkey of the callee */
  target: string
  timeoutMs: number
}

function awaitReply(opts: CallerOptions, request: NostrEvent): Promise<NostrEvent | null> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => finish(null), opts.timeoutMs)
    const sub = opts.pool.subscribe([{ kinds: [RPC_KIND], authors: [opts.target], '#p': [opts.identity.pubkey], '#e': [request.id] }], {
      onevent: (event) => {
        if (event.pubkey === opts.target && event.tags.some((t) => t[0] === 'e' && t[1] === request.id)) finish(event)
      },
    })
    function finish(event: NostrEvent | null): void {
      clearTimeout(timer)
      sub.close()
      resolve(event)
    }
  })
}

/** A caller bound to one callee. A refusal is thrown as CallError with the callee's code. */
export function createRpcCaller(opts: CallerOptions): RpcCaller {
  return async (method, params) => {
    const id = randomBytes(16).toString('hex')
    const body = JSON.stringify({ id, method, params })
    const request = opts.identity.sign({ kind: RPC_KIND, created_at: Math.floor(Date.now() / 1000), content: opts.identity.nip44Encrypt(opts.target, body), tags: [['p', opts.target]] })
    const reply = awaitReply(opts, request)
    const report = await opts.pool.publish(request)
    if (!report.some((r) => r.ok)) throw new CallError('NO_RELAY', `no relay accepted the ${method} request`)
    const event = await reply
    if (event === null) throw new CallError('NO_REPLY', `no answer to ${method} within ${Math.round(opts.timeoutMs / 1000)} s`)
    let response
    try {
      response = parseRpcResponse(opts.identity.nip44Decrypt(opts.target, event.content))
    } catch {
      response = null
    }
    if (response === null || response.id !== id) throw new CallError('MALFORMED', `the answer to ${method} is not a JSON-RPC response to it`)
    if ('error' in response) throw new CallError(response.error.code, response.error.message)
    return response.result
  }
}
