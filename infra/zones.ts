/**
 * Which availability zones the stack spans, decided from the region's live list (regions differ in
 * how many they have) and the config. Pure, so every combination is testable without AWS.
 */
import { ConfigError } from './config.ts';

/** With no count in config, span up to this many zones (fewer where the region has fewer). */
export const DEFAULT_AZ_COUNT = 3;

export function chooseZones(available: readonly string[], wanted: { count?: number; pinned?: string[] }, keyPrefix: string): string[] {
  const sorted = [...available].sort();
  if (wanted.pinned) {
    const missing = wanted.pinned.filter((zone) => !sorted.includes(zone));
    if (missing.length > 0) {
      throw new ConfigError(
        `${keyPrefix}:availabilityZones`,
        `${missing.join(', ')} not available in this region (available: ${sorted.join(', ') || 'none'})`,
      );
    }
    return [...wanted.pinned];
  }
  if (wanted.count !== undefined && wanted.count > sorted.length) {
    throw new ConfigError(
      `${keyPrefix}:availabilityZoneCount`,
      `is ${wanted.count} but the region has only ${sorted.length} available zones (${sorted.join(', ')})`,
    );
  }
  if (sorted.length === 0) throw new ConfigError(`${keyPrefix}:availabilityZoneCount`, 'the region reports no available zones');
  // Sorted names: the same region always yields the same zones in the same order, so AZ index i
  // (and the subnet blocks derived from it) stays put across runs.
  return sorted.slice(0, wanted.count ?? Math.min(DEFAULT_AZ_COUNT, sorted.length));
}
