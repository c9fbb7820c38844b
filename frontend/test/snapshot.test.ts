import { existsSync, readFileSync, unlinkSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { matchSnapshot, normalizeSvg } from "./snapshot";

const NAME = "snapshot-helper-probe.svg";

describe("matchSnapshot", () => {
  afterEach(() => {
    for (const name of [NAME, NAME.replace(".svg", "-changed.svg")]) {
      // node's path helpers: the jsdom environment's global URL is not one fs accepts.
      const path = join(dirname(fileURLToPath(import.meta.url)), "snapshots", name);
      if (existsSync(path)) unlinkSync(path);
    }
  });

  it("a mismatch writes a -changed file beside the snapshot and fails", () => {
    expect(matchSnapshot(NAME, "<svg>a</svg>").ok).toBe(true);
    const result = matchSnapshot(NAME, "<svg>b</svg>");
    expect(result.ok).toBe(false);
    expect(result.path.endsWith("snapshot-helper-probe-changed.svg")).toBe(true);
    expect(readFileSync(result.path, "utf8")).toBe("<svg>b</svg>");
  });

  it("normalizeSvg rounds numbers to 3 decimals", () => {
    expect(normalizeSvg('<rect x="1.23456" y="2.0004e-7"/>')).toBe('<rect x="1.235" y="0"/>');
  });
});
