import { afterEach, describe, expect, it } from "vitest";
import { enhance } from "../src/enhance/enhance";
import { cellKey } from "../src/tables/cellKey";
import { compareKeys } from "../src/tables/compareKeys";

function table(): HTMLTableElement {
  document.body.innerHTML = `
    <table data-enhance="sortable-table">
      <thead><tr><th data-sort="text">SAE</th><th data-sort="number">L0</th><th>Note</th></tr></thead>
      <tbody>
        <tr><td data-value="beta"><a href="/m/beta/">beta</a></td><td data-value="20.5">20.5</td><td>x</td></tr>
        <tr><td data-value="alpha"><a href="/m/alpha/">alpha</a></td><td data-value="">–</td><td>y</td></tr>
        <tr><td data-value="gamma"><a href="/m/gamma/">gamma</a></td><td data-value="3">3</td><td>z</td></tr>
      </tbody>
    </table>`;
  enhance(document);
  return document.querySelector("table")!;
}

const header = (t: HTMLTableElement, i: number) => t.querySelectorAll("th")[i]!;
const names = (t: HTMLTableElement) => Array.from(t.tBodies[0]!.rows).map((r) => r.cells[0]!.textContent);

describe("sortableTable", () => {
  afterEach(() => document.body.replaceChildren());

  it("cellKey reads data-value as a number, and an empty value as missing", () => {
    const td = document.createElement("td");
    td.dataset.value = "0.25";
    expect(cellKey(td, "number")).toBe(0.25);
    td.dataset.value = "";
    expect(cellKey(td, "number")).toBeNull();
    td.removeAttribute("data-value");
    td.textContent = " Alpha ";
    expect(cellKey(td, "text")).toBe("alpha");
  });

  it("compareKeys puts missing keys last in both directions", () => {
    expect([3, null, 1].sort((a, b) => compareKeys(a, b, "ascending"))).toEqual([1, 3, null]);
    expect([3, null, 1].sort((a, b) => compareKeys(a, b, "descending"))).toEqual([3, 1, null]);
  });

  it("a number header sorts descending first, then flips, and sets aria-sort", () => {
    const t = table();
    const l0 = header(t, 1);
    l0.querySelector("button")!.click();
    expect(names(t)).toEqual(["beta", "gamma", "alpha"]);
    expect(l0.getAttribute("aria-sort")).toBe("descending");
    l0.querySelector("button")!.click();
    expect(names(t)).toEqual(["gamma", "beta", "alpha"]);
    expect(l0.getAttribute("aria-sort")).toBe("ascending");
  });

  it("a text header sorts ascending first and clears the other header's aria-sort", () => {
    const t = table();
    const sae = header(t, 0);
    const l0 = header(t, 1);
    l0.querySelector("button")!.click();
    sae.querySelector("button")!.click();
    expect(names(t)).toEqual(["alpha", "beta", "gamma"]);
    expect(l0.hasAttribute("aria-sort")).toBe(false);
    expect(t.querySelector("a")!.getAttribute("href")).toBe("/m/alpha/");
  });

  it("headers without data-sort stay plain text", () => {
    const t = table();
    expect(header(t, 2).querySelector("button")).toBeNull();
  });
});
