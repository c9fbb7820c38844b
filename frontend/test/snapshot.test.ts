import { existsSync, readFileSync, unlinkSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { matchSnapshot, normalizeSvg } from "./snapshot";

const NAME = "snapshot-helper-probe.svg";
// node's path helpers: the jsdom environment's global URL is not one fs accepts.
const at = (name: string) => join(dirname(fileURLToPath(import.meta.url)), "snapshots", name);
const LOCAL = {};
const CI = { CI: "true" };

describe("matchSnapshot", () => {
  afterEach(() => {
    for (const name of [NAME, NAME.replace(".svg", "-changed.svg")]) if (existsSync(at(name))) unlinkSync(at(name));
  });

  it("a missing snapshot is written and passes outside CI", () => {
    expect(matchSnapshot(NAME, "<svg>a</svg>", LOCAL).ok).toBe(true);
    expect(readFileSync(at(NAME), "utf8")).toBe("<svg>a</svg>");
  });

  it("a missing snapshot fails under CI and is not written", () => {
    const result = matchSnapshot(NAME, "<svg>a</svg>", CI);
    expect(result.ok).toBe(false);
    expect(result.message).toContain("snapshot missing");
    expect(existsSync(at(NAME))).toBe(false);
  });

  it("UPDATE_SNAPSHOTS=1 writes a missing snapshot even under CI", () => {
    expect(matchSnapshot(NAME, "<svg>a</svg>", { ...CI, UPDATE_SNAPSHOTS: "1" }).ok).toBe(true);
    expect(existsSync(at(NAME))).toBe(true);
  });

  it("a mismatch writes a -changed file beside the snapshot and fails", () => {
    matchSnapshot(NAME, "<svg>a</svg>", LOCAL);
    const result = matchSnapshot(NAME, "<svg>b</svg>", LOCAL);
    expect(result.ok).toBe(false);
    expect(result.path.endsWith("snapshot-helper-probe-changed.svg")).toBe(true);
    expect(readFileSync(result.path, "utf8")).toBe("<svg>b</svg>");
    expect(readFileSync(at(NAME), "utf8")).toBe("<svg>a</svg>");
  });

  it("UPDATE_SNAPSHOTS=1 rewrites a changed snapshot and removes its -changed file", () => {
    matchSnapshot(NAME, "<svg>a</svg>", LOCAL);
    matchSnapshot(NAME, "<svg>b</svg>", LOCAL);
    expect(matchSnapshot(NAME, "<svg>b</svg>", { UPDATE_SNAPSHOTS: "1" }).ok).toBe(true);
    expect(readFileSync(at(NAME), "utf8")).toBe("<svg>b</svg>");
    expect(existsSync(at(NAME.replace(".svg", "-changed.svg")))).toBe(false);
  });

  it("normalizeSvg rounds numbers to 3 decimals", () => {
    expect(normalizeSvg('<rect x="1.23456" y="2.0004e-7"/>')).toBe('<rect x="1.235" y="0"/>');
  });
});
