import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { throttle } from "../../src/steer/throttle";

describe("throttle", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("calls at once on the leading edge", () => {
    const fn = vi.fn();
    throttle(fn, 100)(1);
    expect(fn).toHaveBeenCalledExactlyOnceWith(1);
  });

  it("while dragging calls at most once per window and ends with the latest value", () => {
    const fn = vi.fn();
    const t = throttle(fn, 100);
    for (let i = 0; i < 30; i++) {
      t(i);
      vi.advanceTimersByTime(10);
    }
    vi.advanceTimersByTime(200);
    const args = fn.mock.calls.map((c) => c[0]);
    expect(args[0]).toBe(0);
    expect(args.at(-1)).toBe(29);
    expect(fn.mock.calls.length).toBeLessThanOrEqual(5);
    expect(fn.mock.calls.length).toBeGreaterThanOrEqual(3);
  });

  it("a single call has no trailing repeat", () => {
    const fn = vi.fn();
    throttle(fn, 100)("a");
    vi.advanceTimersByTime(500);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it("a call after a quiet period runs at once", () => {
    const fn = vi.fn();
    const t = throttle(fn, 100);
    t(1);
    vi.advanceTimersByTime(300);
    t(2);
    expect(fn.mock.calls.map((c) => c[0])).toEqual([1, 2]);
  });

  it("cancel drops the trailing call and flush runs it now", () => {
    const fn = vi.fn();
    const t = throttle(fn, 100);
    t(1);
    t(2);
    t.cancel();
    vi.advanceTimersByTime(500);
    expect(fn.mock.calls.map((c) => c[0])).toEqual([1]);
    t(3);
    t(4);
    t.flush();
    expect(fn.mock.calls.map((c) => c[0])).toEqual([1, 3, 4]);
  });
});
