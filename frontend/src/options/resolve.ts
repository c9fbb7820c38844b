import type { Accessor } from "./accessor";

/** Evaluates an accessor: calls it when it is a function, returns it otherwise. */
export function resolve<D, T>(accessor: Accessor<D, T>, d: D, i: number): T {
  return typeof accessor === "function" ? (accessor as (d: D, i: number) => T)(d, i) : accessor;
}
