/** One histogram bar: activations in [x0, x1) were seen `count` times (NaN: unknown). */
export interface HistogramBin {
  x0: number;
  x1: number;
  count: number;
}
