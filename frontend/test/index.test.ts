import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import * as index from "../src/index";

describe("package index", () => {
  it("exports every reusable chart", () => {
    for (const name of ["featureHistogram", "featureMap", "logitBars", "importanceScatter", "tokenStrip"] as const) {
      expect(typeof index[name], name).toBe("function");
    }
  });

  it("exports the one JSON client", () => {
    expect(typeof index.getJson).toBe("function");
    expect(typeof index.postJson).toBe("function");
    expect(new index.HttpError("x", 400, true)).toBeInstanceOf(Error);
  });

  it("only re-exports", () => {
    const source = readFileSync(join(dirname(fileURLToPath(import.meta.url)), "../src/index.ts"), "utf8");
    for (const line of source.split("\n").filter(Boolean)) expect(line).toMatch(/^export (type )?(\{[^}]*\}|\*) from "\.\/[\w/]+";$/);
  });
});
