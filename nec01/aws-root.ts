// The AWS Nitro Enclaves root certificate G1 (commercial partitions), pinned by value.
// Source: https://aws-nitro-enclaves.amazonaws.com/AWS_NitroEnclaves_Root-G1.zip, the
// certificate inside it (aws-nitro-enclaves-nsm-api docs/attestation_process.md §2.1).
// The SHA-256 that AWS and NEC-01 quote (8cf60e2b…faff7c) is of the zip file; the value
// below is of the certificate DER itself. A test checks both against the fixture file.
import { base64ToBytes } from './encoding.js'

const AWS_NITRO_ROOT_G1_BASE64 =
  'MIICETCCAZagAwIBAgIRAPkxdWgbkK/hHUbMtOTn+FYwCgYIKoZIzj0EAwMwSTELMAkGA1UEBhMCVVMxDzANBgNVBAoMBkFtYXpvbjEMMAoGA1UECwwDQVdTMRswGQYDVQQDDBJhd3Mubml0cm8tZW5jbGF2ZXMwHhcNMTkxMDI4MTMyODA1WhcNNDkxMDI4MTQyODA1WjBJMQswCQYDVQQGEwJVUzEPMA0GA1UECgwGQW1hem9uMQwwCgYDVQQLDANBV1MxGzAZBgNVBAMMEmF3cy5uaXRyby1lbmNsYXZlczB2MBAGByqGSM49AgEGBSuBBAAiA2IABPwCVOumCMHzaHDimtqQvkY4MpJzbolL//Zy2YlES1BR5TSksfbb48C8WBoyt7F2Bw7eEtaaP+ohG2bnUs990d0JX28TcPQXCEPZ3BABIeTPYwEoCWZEh8l5YoQwTcU/9KNCMEAwDwYDVR0TAQH/BAUwAwEB/zAdBgNVHQ4EFgQUkCW1DdkFR+eWw5b6cp3PmanfS5YwDgYDVR0PAQH/BAQDAgGGMAoGCCqGSM49BAMDA2kAMGYCMQCjfy+Rocm9Xue4YnwWmNJVA44fA0P5W2OpYow9OYCVRaEevL8uO1XYru5xtMPWrfMCMQCi85sWBbJwKKXdS6BptQFuZbT73o/gBh1qUxl/nNr12UO8Yfwr6wPLb+6NIwLz3/Y='

/** DER of CN=aws.nitro-enclaves, O=Amazon, OU=AWS, C=US; valid 2019-10-28 .. 2049-10-28. */
export const AWS_NITRO_ROOT_G1_DER: Uint8Array = base64ToBytes(AWS_NITRO_ROOT_G1_BASE64)

// The verifier's own copy: an exported Uint8Array can be written to, the pin must not move.
const PINNED_ROOT = base64ToBytes(AWS_NITRO_ROOT_G1_BASE64)

/** The default trusted root, for the verifier only (callers use AWS_NITRO_ROOT_G1_DER). */
export function pinnedAwsRoot(): Uint8Array {
  return PINNED_ROOT
}

/** SHA-256 of AWS_NITRO_ROOT_G1_DER, lowercase hex. */
export const AWS_NITRO_ROOT_G1_SHA256 = '641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b'
