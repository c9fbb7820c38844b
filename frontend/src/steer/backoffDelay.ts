/**
 * Milliseconds to wait before reconnect attempt `attempt` (0-based): 250 ms doubling to a 5 s
 * cap, with up to 20% jitter from `random` so many tabs do not reconnect in step.
 */
export function backoffDelay(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(5000, 250 * 2 ** Math.max(0, attempt));
  return Math.round(base * (1 + 0.2 * random()));
}
