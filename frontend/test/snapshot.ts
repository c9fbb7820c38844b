import { existsSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";

const SNAPSHOTS = join(dirname(fileURLToPath(import.meta.url)), "snapshots");

/** Rounds every decimal number to 3 places so float noise never breaks a snapshot (Plot's habit). */
export function normalizeSvg(svg: string): string {
  return svg.replace(/\d+\.\d+(e[+-]?\d+)?/gi, (n) => String(+(+n).toFixed(3))).replace(/>\s*</g, ">\n<");
}

const set = (value: string | undefined) => !!value && value !== "0" && value !== "false";

/**
 * Compares `actual` with snapshots/<name>. A mismatch writes snapshots/<base>-changed.<ext>
 * beside it to diff or copy over, and fails. A missing snapshot is written (commit it), except
 * under CI, where it fails: a snapshot that was never committed must not pass there.
 * UPDATE_SNAPSHOTS=1 writes missing and changed snapshots alike.
 */
export function matchSnapshot(
  name: string,
  actual: string,
  env: Record<string, string | undefined> = process.env,
): { ok: boolean; path: string; message: string } {
  mkdirSync(SNAPSHOTS, { recursive: true });
  const path = join(SNAPSHOTS, name);
  const changed = path.replace(/(\.[^.]+)$/, "-changed$1");
  const exists = existsSync(path);
  if (exists && readFileSync(path, "utf8") === actual) {
    if (existsSync(changed)) unlinkSync(changed);
    return { ok: true, path, message: "" };
  }
  if (set(env.UPDATE_SNAPSHOTS) || (!exists && !set(env.CI))) {
    writeFileSync(path, actual);
    if (existsSync(changed)) unlinkSync(changed);
    return { ok: true, path, message: "" };
  }
  if (!exists) return { ok: false, path, message: `snapshot missing: ${path} (run the tests without CI to write it, then commit it)` };
  writeFileSync(changed, actual);
  return { ok: false, path: changed, message: `snapshot changed: compare ${changed} with ${path}` };
}

/** Asserts that the markup of `el` matches snapshots/<name>, numbers rounded to 3 decimals. */
export function expectSnapshot(name: string, el: Element): void {
  const result = matchSnapshot(name, normalizeSvg(el.innerHTML) + "\n");
  expect(result.ok, result.message).toBe(true);
}
