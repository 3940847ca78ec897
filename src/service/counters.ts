// The service's counters: how often each named thing happened, as the health report shows them.

/** One more `name`; a counter starts at zero the first time it is counted. */
export function countUp(counters: Record<string, number>, name: string): void {
  counters[name] = (counters[name] ?? 0) + 1
}
