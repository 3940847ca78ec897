// The enclave's KMS client: AWS's own SDK, reaching KMS through the parent's CONNECT proxy
// (TLS runs end to end to kms.<region>.amazonaws.com; the parent sees ciphertext only).
// The SDK retries nothing here: the boot flow (src/service/sealed-identity.ts) owns retries,
// so every attempt gets a fresh attested RSA key and shows in the logs and /health.
import { KMSClient, type KMSClientConfig } from '@aws-sdk/client-kms'
import { HttpsProxyAgent } from 'https-proxy-agent'

export type KmsCredentials = NonNullable<KMSClientConfig['credentials']>

export interface KmsClientOptions {
  region: string
  /** development and tests: the stand-in's http://127.0.0.1:port; absent: AWS's endpoint for the region */
  endpoint?: string
  /** the parent's CONNECT proxy, http://host:port; absent: direct */
  proxy?: string
  credentials: KmsCredentials
}

const CONNECT_TIMEOUT_MS = 5_000
const REQUEST_TIMEOUT_MS = 15_000

/** A KMSClient for one boot's seal or unseal; the caller destroys it. */
export function createKmsClient(options: KmsClientOptions): KMSClient {
  // One agent for both schemes: CONNECT, then TLS for https (AWS), plain for the stand-in.
  const agent = options.proxy === undefined ? undefined : new HttpsProxyAgent(options.proxy)
  return new KMSClient({
    region: options.region,
    ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
    credentials: options.credentials,
    maxAttempts: 1,
    // NodeHttpHandler's options, which the SDK turns into its handler
    requestHandler: {
      connectionTimeout: CONNECT_TIMEOUT_MS,
      requestTimeout: REQUEST_TIMEOUT_MS,
      ...(agent === undefined ? {} : { httpAgent: agent, httpsAgent: agent }),
    },
  })
}

/** arn:aws:kms:REGION:ACCOUNT:key/ID → REGION; null for anything else (a bare id, an alias). */
export function regionOfKeyArn(keyId: string): string | null {
  return /^arn:aws[a-z-]*:kms:([a-z0-9-]+):\d{12}:key\/[0-9a-zA-Z-]+$/.exec(keyId)?.[1] ?? null
}

/**
 * Whether a blob's key ARN is the key this service is pinned to (its ARN, or its bare id in
 * `region`). Aliases never match: whoever administers the account can re-point one.
 */
export function isPinnedKey(pinned: string, blobKeyArn: string, region: string): boolean {
  if (pinned.startsWith('arn:')) return pinned === blobKeyArn
  return new RegExp(`^arn:aws[a-z-]*:kms:${region}:\\d{12}:key/${pinned}$`).test(blobKeyArn) && /^[0-9a-zA-Z-]+$/.test(pinned)
}

/** Why a --kms-key value is unusable, or null: an ARN of a key, or a bare key id. */
export function kmsKeyProblem(keyId: string): string | null {
  if (keyId.startsWith('alias/') || keyId.includes(':alias/')) return 'an alias can be re-pointed at another key by whoever administers the account: give the key ARN or key id'
  if (regionOfKeyArn(keyId) !== null || /^[0-9a-zA-Z-]{1,64}$/.test(keyId)) return null
  return `expected a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID) or key id, got '${keyId.slice(0, 100)}'`
}
