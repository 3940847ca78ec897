// The parent's part in the persistent identity: it keeps the enclave's sealed key in a file,
// hands it in at boot, takes a new one out, and passes the instance role's credentials in.
// It can lose or withhold the blob; it can never open it (only an enclave the KMS key policy
// accepts can). docs/identity.md.
//
// A small HTTP service on the parent's loopback, which the enclave reaches through the
// CONNECT proxy it already uses (the proxy allows exactly this host:port), so no new vsock
// bridge is needed:
//   GET /v1/sealed-key   200 the blob (application/octet-stream)
//                        404 {"sealedKey":null,"newIdentity":REASON|null}: none held, or the
//                            operator asked for a new identity (nec01 parent --new-identity)
//   PUT /v1/sealed-key   the enclave's new blob; the format is checked, an old one is kept aside
//   GET /v1/credentials  the role's temporary credentials (IMDSv2), 503 when there are none
import { errorText } from '../../nec01/errors.js'
import { mkdirSync, renameSync, existsSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { dirname } from 'node:path'
import { FileReadError, readBoundedFile, writeTempFile } from '../files.js'
import { BlobFormatError, decodeSealedBlob, MAX_SEALED_BLOB_BYTES } from '../kms/sealed-blob.js'
import type { RoleCredentials } from './imds.js'

export const SEALED_KEY_PATH = '/v1/sealed-key'
export const CREDENTIALS_PATH = '/v1/credentials'
/** The port of the parent's sealed-key service on its loopback (the proxy is 1080). */
export const DEFAULT_SEALED_KEY_PORT = 1081
export const SEALED_KEY_FILE_NAME = 'sealed-key.bin'

/** The answer to GET /v1/sealed-key when there is no blob to hand in. */
export interface NoSealedKey {
  sealedKey: null
  newIdentity: string | null
}

export interface SealedKeyFile {
  readonly path: string
  /** the blob, or null when there is none; throws FileReadError when the file cannot be read */
  read(): Uint8Array | null
  /** writes the blob (0600, atomically); an existing one is renamed aside, never deleted */
  write(blob: Uint8Array): { keptAside: string | null }
}

/** The file the parent (or `serve --dev`, playing the parent) keeps the blob in. */
export function sealedKeyFile(path: string): SealedKeyFile {
  return {
    path,
    read() {
      try {
        return new Uint8Array(readBoundedFile(path, MAX_SEALED_BLOB_BYTES))
      } catch (error) {
        if (error instanceof FileReadError && error.errno === 'ENOENT') return null
        throw error
      }
    },
    write(blob) {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
      const temp = writeTempFile(path, blob, 0o600)
      let keptAside: string | null = null
      if (existsSync(path)) {
        keptAside = `${path}.replaced-${new Date().toISOString().replace(/[:.]/g, '-')}`
        renameSync(path, keptAside)
      }
      renameSync(temp, path)
      return { keptAside }
    },
  }
}

/** One JSON line per request: what was handed in or out, never a credential or a blob byte. */
export interface SealedKeyEvent {
  event: 'sealed-key'
  ts: string
  action: 'handed-in' | 'none' | 'new-identity' | 'stored' | 'refused' | 'credentials' | 'credentials-failed'
  bytes?: number
  kept_aside?: string
  detail?: string
}

export interface SealedKeyServiceOptions {
  /** keep it on loopback: the enclave reaches it through the proxy */
  host?: string
  /** 0 picks a free port */
  port?: number
  file: SealedKeyFile
  credentials: () => Promise<RoleCredentials>
  /** the operator's reason for a new identity: the old blob is not handed in (and kept aside when the new one comes) */
  newIdentity?: string
  log?: (event: SealedKeyEvent) => void
}

export interface SealedKeyService {
  readonly host: string
  readonly port: number
  close(): Promise<void>
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = []
    let size = 0
    req.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size <= limit) parts.push(chunk)
    })
    req.on('end', () => resolve(size > limit ? null : Buffer.concat(parts)))
    req.on('error', reject)
  })
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text)
}

export async function startSealedKeyService(options: SealedKeyServiceOptions): Promise<SealedKeyService> {
  const log = (e: Omit<SealedKeyEvent, 'event' | 'ts'>): void => options.log?.({ event: 'sealed-key', ts: new Date().toISOString(), ...e })
  // Consumed by the first new blob: after that, the new identity is the one to hand in.
  let newIdentity = options.newIdentity ?? null

  function handIn(res: ServerResponse): void {
    const blob = newIdentity === null ? options.file.read() : null
    if (blob === null) {
      log({ action: newIdentity === null ? 'none' : 'new-identity', ...(newIdentity === null ? {} : { detail: newIdentity }) })
      const none: NoSealedKey = { sealedKey: null, newIdentity }
      return json(res, 404, none)
    }
    log({ action: 'handed-in', bytes: blob.length })
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': blob.length }).end(blob)
  }

  async function takeOut(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req, MAX_SEALED_BLOB_BYTES)
    try {
      if (body === null) throw new BlobFormatError(`over ${MAX_SEALED_BLOB_BYTES} bytes`)
      decodeSealedBlob(new Uint8Array(body))
    } catch (error) {
      const detail = error instanceof BlobFormatError ? error.message : 'unreadable'
      log({ action: 'refused', detail })
      return json(res, 400, { error: `not a sealed key: ${detail}` })
    }
    const { keptAside } = options.file.write(new Uint8Array(body))
    newIdentity = null
    log({ action: 'stored', bytes: body.length, ...(keptAside === null ? {} : { kept_aside: keptAside }) })
    json(res, 200, { stored: body.length })
  }

  async function credentials(res: ServerResponse): Promise<void> {
    try {
      const creds = await options.credentials()
      log({ action: 'credentials' })
      json(res, 200, creds)
    } catch (error) {
      const detail = errorText(error).split('\n')[0] ?? ''
      log({ action: 'credentials-failed', detail })
      json(res, 503, { error: detail })
    }
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]
    if (path === SEALED_KEY_PATH && req.method === 'GET') return handIn(res)
    if (path === SEALED_KEY_PATH && req.method === 'PUT') return takeOut(req, res)
    if (path === CREDENTIALS_PATH && req.method === 'GET') return credentials(res)
    if (path === SEALED_KEY_PATH || path === CREDENTIALS_PATH) return json(res, 405, { error: 'method not allowed' })
    json(res, 404, { error: 'not found' })
  }

  const server = createServer((req, res) => {
    route(req, res).catch((error: unknown) => {
      log({ action: 'refused', detail: errorText(error).split('\n')[0] ?? '' })
      if (!res.headersSent) json(res, 500, { error: 'the parent could not keep the sealed key' })
      else res.destroy()
    })
  })
  const host = options.host ?? '127.0.0.1'
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? DEFAULT_SEALED_KEY_PORT, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  return {
    host,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
