/** Throws `invalid <name>: <value>`, the one error shape for a bad option or bad input. */
export function invalid(name: string, value: unknown): never {
  const shown = typeof value === "string" ? value : typeof value === "object" && value !== null ? JSON.stringify(value) : String(value);
  throw new Error(`invalid ${name}: ${shown}`);
}
