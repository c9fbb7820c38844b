import { describe, expect, it } from "vitest";
import { mainSae } from "../../src/steer/mainSae";

const saes = [
  { slug: "mlp0", d_sae: 384, hook_name: "blocks.0.hook_mlp_out" },
  { slug: "res1", d_sae: 1536, hook_name: "blocks.1.hook_resid_post" },
  { slug: "res2", d_sae: 1536, hook_name: "blocks.2.hook_resid_post" },
];

describe("mainSae", () => {
  it("is the SAE of the steered features", () => {
    expect(mainSae(saes, [{ sae: "res2", index: 1, strength: 1, mode: "add" }])!.slug).toBe("res2");
  });

  it("else the first SAE on the residual stream, else the first", () => {
    expect(mainSae(saes)!.slug).toBe("res1");
    expect(mainSae(saes.slice(0, 1))!.slug).toBe("mlp0");
    expect(mainSae([])).toBeNull();
  });

  it("ignores a vector entry without an SAE", () => {
    expect(mainSae(saes, [{ sae: "", index: -1, vector: 2, strength: 1, mode: "add" }])!.slug).toBe("res1");
  });
});
