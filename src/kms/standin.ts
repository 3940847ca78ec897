// The KMS stand-in for development and tests, as the NSM simulator is for the NSM: an HTTP
// server on loopback speaking KMS's JSON 1.1 protocol (POST /, X-Amz-Target:
// TrentService.<Operation>, SigV4-signed), so the real @aws-sdk/client-kms KMSClient talks to
// it unmodified through `endpoint`. It enforces what the enclave's security rests on: the
// attestation verified against a trusted root, debug enclaves refused, the key policy's
// conditions. It proves the code path and the protocol; the keys sit in a file on this machine.
import { randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { SIM_REGION } from '../nsm/pki.js'
import { faultBody, KmsFault } from './faults.js'
import { OPERATIONS, type Input, type OperationContext } from './operations.js'
import { type KeyPolicy } from './policy.js'
import { readSigV4 } from './sigv4.js'
import { openKeyStore, type KeyStore } from './store.js'

export const STANDIN_ACCOUNT_ID = '000000000000'
/** Every signed caller is this role unless `principals` says otherwise. */
export const STANDIN_CALLER_ARN = `arn:aws:iam::${STANDIN_ACCOUNT_ID}:role/nec01-parent`
const TARGET_PREFIX = 'TrentService.'
const JSON_TYPE = 'application/x-amz-json-1.1'
/** A Recipient's document (≤ 17 KiB) in base64 plus a 6 KiB blob fit many times over. */
const MAX_BODY_BYTES = 256 * 1024

/** One request and its answer, bytes as they crossed the wire (tests look for secrets in them). */
export interface KmsExchange {
  operation: string
  status: number
  requestBody: Buffer
  responseBody: Buffer
}

export interface KmsStandinOptions {
  /** keys live in <stateDir>/kms-standin/keys.json */
  stateDir: string
  /** the root attestation documents must chain to (DER or PEM): the simulator's in development */
  root: Uint8Array | string
  host?: string
  /** 0 (default): any free port */
  port?: number
  region?: string
  /** access key id → caller ARN; with it, unknown access keys are refused as AWS refuses them */
  principals?: Record<string, string>
  /** clock for attestation validity, ms since the epoch */
  now?: () => number
  onExchange?: (exchange: KmsExchange) => void
}

export interface KmsStandin {
  /** http://host:port, for KMSClient's endpoint */
  readonly endpoint: string
  readonly region: string
  readonly accountId: string
  /** create a key directly (no request, no lockout check): for setting up dev and tests */
  createKey(policy: KeyPolicy, description?: string): { keyId: string; arn: string }
  putKeyPolicy(keyId: string, policy: KeyPolicy): void
  close(): Promise<void>
}

function readBody(req: IncomingMessage): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = []
    let size = 0
    req.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size <= MAX_BODY_BYTES) parts.push(chunk)
    })
    req.on('end', () => resolve(size > MAX_BODY_BYTES ? null : Buffer.concat(parts)))
    req.on('error', reject)
  })
}

function parseInput(body: Buffer): Input {
  let input: unknown
  try {
    input = body.length === 0 ? {} : JSON.parse(body.toString('utf8'))
  } catch {
    throw new KmsFault('SerializationException', 'The request body is not JSON')
  }
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new KmsFault('SerializationException', 'The request body must be a JSON object')
  return input as Input
}

interface Handled {
  operation: string
  status: number
  body: string
}

function callerArn(options: KmsStandinOptions, accessKeyId: string): string {
  if (options.principals === undefined) return STANDIN_CALLER_ARN
  const arn = options.principals[accessKeyId]
  if (arn === undefined) throw new KmsFault('UnrecognizedClientException', 'The security token included in the request is invalid.')
  return arn
}

async function handle(req: IncomingMessage, body: Buffer | null, options: KmsStandinOptions, store: KeyStore, region: string): Promise<Handled> {
  const target = String(req.headers['x-amz-target'] ?? '')
  const operation = target.startsWith(TARGET_PREFIX) ? target.slice(TARGET_PREFIX.length) : target
  try {
    if (req.method !== 'POST') throw new KmsFault('UnknownOperationException', 'KMS takes POST requests only')
    const credential = readSigV4(req.headers, region)
    if ('type' in credential) throw new KmsFault(credential.type, credential.message, credential.status)
    if (body === null) throw new KmsFault('SerializationException', `The request body is over ${MAX_BODY_BYTES} bytes`)
    const run = target.startsWith(TARGET_PREFIX) ? OPERATIONS[operation] : undefined
    if (run === undefined) throw new KmsFault('UnknownOperationException', `Unknown operation ${target}`)
    const ctx: OperationContext = {
      store,
      trust: { root: options.root, now: options.now ?? Date.now },
      accountId: STANDIN_ACCOUNT_ID,
      callerArn: callerArn(options, credential.accessKeyId),
    }
    return { operation, status: 200, body: JSON.stringify(await run(ctx, parseInput(body))) }
  } catch (error) {
    const fault = error instanceof KmsFault ? error : new KmsFault('KMSInternalException', 'The stand-in failed internally')
    return { operation, status: fault.status, body: faultBody(fault) }
  }
}

/** Starts the stand-in on loopback. Throws StandinStateError when its key file is damaged. */
export async function startKmsStandin(options: KmsStandinOptions): Promise<KmsStandin> {
  const region = options.region ?? SIM_REGION
  const store = openKeyStore({ stateDir: options.stateDir, region, accountId: STANDIN_ACCOUNT_ID })
  const respond = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const body = await readBody(req)
    const handled = await handle(req, body, options, store, region)
    const responseBody = Buffer.from(handled.body)
    res.writeHead(handled.status, { 'content-type': JSON_TYPE, 'content-length': responseBody.length, 'x-amzn-requestid': randomUUID() })
    res.end(responseBody)
    options.onExchange?.({ operation: handled.operation, status: handled.status, requestBody: body ?? Buffer.alloc(0), responseBody })
  }
  const server = createServer((req, res) => {
    respond(req, res).catch(() => res.destroy())
  })
  const host = options.host ?? '127.0.0.1'
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, host, () => resolve())
  })
  const { port } = server.address() as AddressInfo
  return {
    endpoint: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    region,
    accountId: STANDIN_ACCOUNT_ID,
    createKey: (policy, description) => {
      const key = store.create({ policy, description })
      return { keyId: key.keyId, arn: key.arn }
    },
    putKeyPolicy: (keyId, policy) => store.putPolicy(keyId, policy),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        // the SDK keeps connections alive; a closed stand-in must look like a stopped one
        server.closeAllConnections()
      }),
  }
}
