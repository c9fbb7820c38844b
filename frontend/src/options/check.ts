import type { Margin } from "../charts/margin";
import type { Accessor } from "./accessor";
import { invalid } from "./invalid";

/** Checks an option value: returns what to store, or throws `invalid <name>: <value>`. */
export type Check<T> = (value: unknown, name: string, current: T) => T;

const finite = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

function positive(value: unknown, name: string): number {
  if (!finite(value) || value <= 0) invalid(name, value);
  return value;
}

function integer(min: number, max = Infinity) {
  return (value: unknown, name: string): number => {
    if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) invalid(name, value);
    return value;
  };
}

/** The option checks the charts share, one per kind of value, for `chartOptions`. */
export const check = {
  /** A finite number > 0. */
  positive,
  /** An integer in [min, max]. */
  integer,
  /** null ("from the data"), or what `inner` accepts. */
  orNull:
    <T>(inner: (value: unknown, name: string) => T) =>
    (value: unknown, name: string): T | null =>
      value === null ? null : inner(value, name),
  /** One of the given keywords. */
  oneOf:
    <T extends string>(...keywords: T[]) =>
    (value: unknown, name: string): T => {
      if (!keywords.includes(value as T)) invalid(name, value);
      return value as T;
    },
  /** Any string. */
  text: (value: unknown, name: string): string => {
    if (typeof value !== "string") invalid(name, value);
    return value;
  },
  /** A function. */
  fn: <F>(value: unknown, name: string): F => {
    if (typeof value !== "function") invalid(name, value);
    return value as F;
  },
  /** A function, or null for none. */
  fnOrNull: <F>(value: unknown, name: string): F | null => {
    if (value !== null && typeof value !== "function") invalid(name, value);
    return value as F | null;
  },
  /** A string constant, or a function of the datum and its index (see `resolve`). */
  accessor: <D>(value: unknown, name: string): Accessor<D, string> => {
    if (typeof value !== "string" && typeof value !== "function") invalid(name, value);
    return value as Accessor<D, string>;
  },
  /** Some sides of a margin, each ≥ 0, merged into the current one. */
  margin: (value: unknown, name: string, current: Margin): Margin => {
    if (typeof value !== "object" || value === null) invalid(name, value);
    const m = { ...current, ...(value as Partial<Margin>) };
    for (const side of ["top", "right", "bottom", "left"] as const) {
      if (!finite(m[side]) || m[side] < 0) invalid(`${name}.${side}`, m[side]);
    }
    return m;
  },
};
