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
