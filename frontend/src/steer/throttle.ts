export interface Throttled<A extends unknown[]> {
  (...args: A): void;
  /** Runs a pending trailing call now. */
  flush(): void;
  /** Drops a pending trailing call. */
  cancel(): void;
}

/**
 * Calls `fn` at once (leading edge), then at most once per `wait` ms while calls keep coming,
 * and once more with the latest arguments after they stop (trailing edge). A call in a quiet
 * period always runs at once, so a single click never waits.
 */
export function throttle<A extends unknown[]>(fn: (...args: A) => void, wait: number): Throttled<A> {
  let last = -Infinity;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let pending: A | null = null;

  const run = (args: A) => {
    last = Date.now();
    fn(...args);
  };
  const trailing = () => {
    timer = null;
    if (pending) {
      const args = pending;
      pending = null;
      run(args);
      timer = setTimeout(trailing, wait);
    }
  };
  const throttled = ((...args: A) => {
    const since = Date.now() - last;
    if (timer === null && since >= wait) {
      run(args);
      timer = setTimeout(trailing, wait);
    } else {
      pending = args;
      if (timer === null) timer = setTimeout(trailing, wait - since);
    }
  }) as Throttled<A>;
  throttled.flush = () => {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    if (pending) trailing();
  };
  throttled.cancel = () => {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    pending = null;
  };
  return throttled;
}
