/**
 * Healing and scanning (issue #6): repairs of a drive's copy of objects from the other drives
 * of its erasure set, a repair queue per drive, a scanner per drive, and the RPC handlers
 * (QueueHeal, HealStatus, StartHeal). See the design notes of repair.ts, scanner.ts and
 * healer.ts.
 */
export { checkData, type DataCheck, verifyFrames } from './check.ts'
export {
  DEFAULT_HEAL_CONFIG,
  type HealConfig,
  Healer,
  type HealerInit,
  type HealLogger,
  MAX_QUEUED_PER_DRIVE,
  registerHealRpcs,
} from './healer.ts'
export { LoadMeter } from './load-meter.ts'
export { Repairer, type RepairOutcome, type RepairRequest } from './repair.ts'
export { FULL_HEAL_PENDING_KEY } from './scanner.ts'
export { SetAccess } from './set-access.ts'
