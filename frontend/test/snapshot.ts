import { existsSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const SNAPSHOTS = join(dirname(fileURLToPath(import.meta.url)), "snapshots");

/** Rounds every decimal number to 3 places so float noise never breaks a snapshot (Plot's habit). */
export function normalizeSvg(svg: string): string {
  return svg.replace(/\d+\.\d+(e[+-]?\d+)?/gi, (n) => String(+(+n).toFixed(3))).replace(/>\s*</g, ">\n<");
}

/**
 * Compares `actual` with snapshots/<name>. A missing snapshot is written (commit it);
 * a mismatch writes snapshots/<base>-changed.<ext> beside it to diff or copy over, and fails.
 */
export function matchSnapshot(name: string, actual: string): { ok: boolean; path: string } {
  mkdirSync(SNAPSHOTS, { recursive: true });
  const path = join(SNAPSHOTS, name);
  const changed = path.replace(/(\.[^.]+)$/, "-changed$1");
  if (!existsSync(path)) {
    writeFileSync(path, actual);
    return { ok: true, path };
  }
  if (readFileSync(path, "utf8") === actual) {
    if (existsSync(changed)) unlinkSync(changed);
    return { ok: true, path };
  }
  writeFileSync(changed, actual);
  return { ok: false, path: changed };
}
