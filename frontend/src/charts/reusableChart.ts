import type { Selection } from "d3";
import { chartOptions, type OptionChecks } from "../options/chartOptions";

/**
 * A reusable chart (Bostock's pattern): a function called on a selection that renders each
 * element's datum with the current `options`, plus one chained getter/setter per option
 * (see `chartOptions`). `options` is this chart's own copy: copy nested defaults into it.
 */
export function reusableChart<C extends object, O extends object, E extends Element, D>(
  options: O,
  checks: OptionChecks<O>,
  render: (container: E, datum: D, options: O) => void,
): C {
  const chart = (selection: Selection<E, D, Element | null, unknown>) => {
    selection.each(function (datum) {
      render(this, datum, options);
    });
  };
  return chartOptions<C, O>(chart, options, checks);
}
