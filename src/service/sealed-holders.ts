// Who keeps the sealed key between boots. In an enclave, the parent (src/parent/sealed.ts),
// reached through the CONNECT proxy the service already uses; in development, a file in the
// state directory, `serve` playing the parent. Either can lose or withhold the blob, neither
// can open it. The parent also passes in the instance role's credentials for KMS.
import { errorText } from '../../nec01/errors.js'
import { request as httpRequest, type Agent } from 'node:http'
import { HttpsProxyAgent } from 'https-proxy-agent'
import type { KmsCredentials } from '../kms/client.js'
import { MAX_SEALED_BLOB_BYTES } from '../kms/sealed-blob.js'
import { CREDENTIALS_PATH, SEALED_KEY_PATH, type NoSealedKey, type SealedKeyFile } from '../parent/sealed.js'
import { IdentityError, type HeldKey, type SealedKeyHolder } from './sealed-identity.js'

const TIMEOUT_MS = 10_000
const MAX_ANSWER_BYTES = MAX_SEALED_BLOB_BYTES + 1024

/** serve --dev: the blob in a file of the state directory. */
export function fileKeyHolder(file: SealedKeyFile): SealedKeyHolder {
  const unreadable = (error: unknown): IdentityError =>
    new IdentityError('HOLDER_FAILED', `sealed key file ${file.path}: ${errorText(error).split('\n')[0] ?? ''}`)
  return {
    where: file.path,
    load: async () => {
      try {
        return { blob: file.read(), newIdentity: null }
      } catch (error) {
        throw unreadable(error)
      }
    },
    store: async (blob) => {
      try {
        file.write(blob)
      } catch (error) {
        throw unreadable(error)
      }
    },
  }
}

export interface ParentLinkOptions {
  /** the parent's sealed-key service as the parent sees it, e.g. http://127.0.0.1:1081 */
  url: string
  /** the CONNECT proxy that reaches it (in an enclave: http://127.0.0.1:1080); absent: direct */
  proxy?: string
}

interface Answer {
  status: number
  body: Buffer
}

function call(options: ParentLinkOptions, agent: Agent | undefined, method: 'GET' | 'PUT', path: string, body?: Uint8Array): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const url = new URL(path, options.url)
    const headers = body === undefined ? {} : { 'content-type': 'application/octet-stream', 'content-length': body.length }
    const req = httpRequest(url, { method, headers, ...(agent === undefined ? {} : { agent }), timeout: TIMEOUT_MS }, (res) => {
      const parts: Buffer[] = []
      let size = 0
      res.on('data', (chunk: Buffer) => {
        size += chunk.length
        if (size > MAX_ANSWER_BYTES) res.destroy(new Error(`answer over ${MAX_ANSWER_BYTES} bytes`))
        else parts.push(chunk)
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts) }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`no answer in ${TIMEOUT_MS} ms`)))
    req.on('error', reject)
    req.end(body)
  })
}

function parentProblem(what: string, error: unknown): IdentityError {
  return new IdentityError('PARENT_UNREACHABLE', `the parent (${what}): ${errorText(error).split('\n')[0] ?? ''}`)
}

/** The parent's sealed-key service and credentials, through the proxy. */
export function parentLink(options: ParentLinkOptions): { holder: SealedKeyHolder; credentials: KmsCredentials } {
  const agent = options.proxy === undefined ? undefined : new HttpsProxyAgent(options.proxy)
  const ask = async (what: string, method: 'GET' | 'PUT', path: string, body?: Uint8Array): Promise<Answer> => {
    try {
      return await call(options, agent, method, path, body)
    } catch (error) {
      throw parentProblem(what, error)
    }
  }
  const holder: SealedKeyHolder = {
    where: `the parent (${options.url})`,
    load: async (): Promise<HeldKey> => {
      const answer = await ask('sealed key', 'GET', SEALED_KEY_PATH)
      if (answer.status === 200) return { blob: new Uint8Array(answer.body), newIdentity: null }
      if (answer.status !== 404) throw parentProblem('sealed key', `answered ${answer.status}`)
      let none: Partial<NoSealedKey>
      try {
        none = JSON.parse(answer.body.toString('utf8')) as Partial<NoSealedKey>
      } catch {
        throw parentProblem('sealed key', 'answered 404 without its JSON')
      }
      return { blob: null, newIdentity: typeof none.newIdentity === 'string' && none.newIdentity !== '' ? none.newIdentity.slice(0, 500) : null }
    },
    store: async (blob) => {
      const answer = await ask('storing the sealed key', 'PUT', SEALED_KEY_PATH, blob)
      if (answer.status !== 200) throw parentProblem('storing the sealed key', `answered ${answer.status}: ${answer.body.toString('utf8').slice(0, 200)}`)
    },
  }
  // The SDK calls this before signing and again once the expiration is near. A failure is
  // named so that the seal layer files it under CREDENTIALS_REFUSED: retried with backoff.
  const credentials: KmsCredentials = async () => {
    const failed = (detail: string): Error => Object.assign(new Error(`credentials from the parent: ${detail}`), { name: 'CredentialsProviderError' })
    let answer: Answer
    try {
      answer = await call(options, agent, 'GET', CREDENTIALS_PATH)
    } catch (error) {
      throw failed(errorText(error))
    }
    if (answer.status !== 200) throw failed(`answered ${answer.status}`)
    let c: Record<string, unknown>
    try {
      c = JSON.parse(answer.body.toString('utf8')) as Record<string, unknown>
    } catch {
      throw failed('not JSON')
    }
    if (typeof c.accessKeyId !== 'string' || typeof c.secretAccessKey !== 'string') throw failed('incomplete')
    return {
      accessKeyId: c.accessKeyId,
      secretAccessKey: c.secretAccessKey,
      ...(typeof c.sessionToken === 'string' ? { sessionToken: c.sessionToken } : {}),
      ...(typeof c.expiration === 'string' ? { expiration: new Date(c.expiration) } : {}),
    }
  }
  return { holder, credentials }
}
