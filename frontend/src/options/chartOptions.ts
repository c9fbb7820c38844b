import type { Check } from "./check";

/** One check per option of O. */
export type OptionChecks<O> = { [K in keyof O]-?: Check<O[K]> };

/**
 * The option methods of a chart C with options O: `chart.width()` reads an option,
 * `chart.width(320)` sets it and returns the chart. `In` names the options whose setter
 * takes another type than the getter returns (a margin takes some of its sides).
 */
export type OptionMethods<O, C, In extends { [K in keyof O]?: unknown } = {}> = {
  [K in keyof O]-?: {
    (): O[K];
    (value: K extends keyof In ? In[K] : O[K]): C;
  };
};

/**
 * Gives `chart` one chained getter/setter per option (Bostock's reusable charts). A setter
 * runs the option's check, stores the result in `options` (which the chart reads when it
 * renders) and returns the chart; a bad value throws `invalid <option>: <value>`.
 */
export function chartOptions<C extends object, O extends object>(render: object, options: O, checks: OptionChecks<O>): C {
  const chart = render as Record<string, unknown>;
  for (const key of Object.keys(checks) as (keyof O & string)[]) {
    const checkOption = checks[key];
    chart[key] = (...args: unknown[]) => {
      if (args.length === 0) return options[key];
      options[key] = checkOption(args[0], key, options[key]);
      return chart;
    };
  }
  return chart as C;
}
