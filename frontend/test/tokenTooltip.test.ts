import { afterEach, describe, expect, it } from "vitest";
import { tokenTooltip } from "../src/tokens/tokenTooltip";

describe("tokenTooltip", () => {
  afterEach(() => document.body.replaceChildren());

  it("hovering a token shows its text and value; leaving hides it", () => {
    document.body.innerHTML = '<span class="token-strip"><span class="token" data-value="2.34567">&lt;img src=x&gt;</span></span>';
    const tip = tokenTooltip(document);
    const token = document.querySelector(".token")!;
    token.dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    expect(tip.hidden).toBe(false);
    expect(tip.querySelector("span")!.textContent).toBe("<img src=x>");
    expect(tip.querySelector("img")).toBeNull();
    expect(tip.querySelector("strong")!.textContent).toBe("2.35");
    token.dispatchEvent(new MouseEvent("mouseout", { bubbles: true }));
    expect(tip.hidden).toBe(true);
  });

  it("an unknown value says so", () => {
    document.body.innerHTML = '<span class="token" data-value="NaN">a</span>';
    const tip = tokenTooltip(document);
    document.querySelector(".token")!.dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    expect(tip.querySelector("strong")!.textContent).toBe("unknown");
  });

  it("strips drawn after it was installed are covered too", () => {
    const tip = tokenTooltip(document);
    document.body.insertAdjacentHTML("beforeend", '<span class="token" data-value="1">late</span>');
    document.querySelector(".token")!.dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    expect(tip.querySelector("span")!.textContent).toBe("late");
  });
});

describe("tokenTooltip precision", () => {
  afterEach(() => document.body.replaceChildren());

  it("follows the strip's precision option", async () => {
    const { select } = await import("d3");
    const { tokenStrip } = await import("../src/tokens/tokenStrip");
    const div = document.createElement("div");
    document.body.append(div);
    select(div).datum({ tokens: ["a"], values: [1.23456] }).call(tokenStrip().precision(5) as never);
    const tip = tokenTooltip(document);
    div.querySelector(".token")!.dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    expect(tip.querySelector("strong")!.textContent).toBe("1.2346");
  });
});
