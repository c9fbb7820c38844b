/** A value given either as a constant or as a function of the datum and its index. */
export type Accessor<D, T> = T | ((d: D, i: number) => T);
