// One entry point for the service and the CLI: the real module by default, the simulator
// only when asked for (--dev). Never falls back from hardware to the simulator: outside an
// enclave the hardware adapter fails with NoDevice and a hint, so nobody ships a service that
// silently attests with a key anyone can hold.
import { HardwareNsm, type NsmAddon } from './hardware.js'
import { NsmSimulator } from './simulator.js'
import type { PayloadMapForm } from './document.js'
import type { MeasureOptions } from './pcrs.js'

import { defaultStateDir } from './state-dir.js'

export { defaultStateDir, STATE_DIR_ENV } from './state-dir.js'

export interface OpenNsmOptions {
  /** use the simulator instead of /dev/nsm */
  dev?: boolean
  /** simulator state (its CA); default ~/.nec01 or $NEC01_STATE_DIR */
  stateDir?: string
  /** simulator: debug-mode enclave (PCR0..2 zero) */
  debug?: boolean
  /** simulator: explicit boot values for PCR0..15 */
  bootPcrs?: Record<number, Uint8Array>
  /** simulator: clock in ms */
  now?: () => number
  /** simulator: leaf lifetime and renew margin in seconds */
  leafLifetimeSec?: number
  leafRenewMarginSec?: number
  /** simulator: where the measured code lives */
  measure?: MeasureOptions
  /** simulator: payload map framing, 'indefinite' (default, as the NSM since 2025-09) or 'definite' */
  payloadMapForm?: PayloadMapForm
  /** simulator: the EC2 instance id (PCR4) and the image's signing certificate DER (PCR8) */
  instanceId?: string
  signingCertificate?: Uint8Array
  /** hardware: device path checked before loading the addon (default /dev/nsm) */
  devicePath?: string
  /** hardware: addon stand-in for tests */
  addon?: NsmAddon
}

export type OpenedNsm = HardwareNsm | NsmSimulator

export async function openNsm(options: OpenNsmOptions = {}): Promise<OpenedNsm> {
  if (options.dev !== true) {
    return HardwareNsm.open({ devicePath: options.devicePath, addon: options.addon })
  }
  return NsmSimulator.open({
    stateDir: options.stateDir ?? defaultStateDir(),
    now: options.now,
    leafLifetimeSec: options.leafLifetimeSec,
    leafRenewMarginSec: options.leafRenewMarginSec,
    debug: options.debug,
    bootPcrs: options.bootPcrs,
    measure: options.measure,
    payloadMapForm: options.payloadMapForm,
    instanceId: options.instanceId,
    signingCertificate: options.signingCertificate,
  })
}

export function isSimulated(nsm: OpenedNsm): nsm is NsmSimulator {
  return nsm instanceof NsmSimulator
}
