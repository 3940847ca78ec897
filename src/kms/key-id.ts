// KMS key names as the service takes them (pure: no SDK here, so checking flags loads nothing).

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
