/** Space around a chart's plot area for its axes, in pixels. */
export interface Margin {
  top: number;
  right: number;
  bottom: number;
  left: number;
}
