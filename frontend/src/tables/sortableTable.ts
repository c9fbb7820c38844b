import { invalid } from "../options/invalid";
import { cellKey } from "./cellKey";
import { compareKeys, type SortDirection } from "./compareKeys";

/**
 * Makes a server-rendered table sortable by its `th[data-sort="number|text"]` headers: each
 * header's label becomes a button; a click sorts the body rows by that column (numbers first
 * descending, text ascending; a second click flips) and sets `aria-sort` on the header.
 */
export function sortableTable(table: HTMLTableElement): void {
  const body = table.tBodies[0];
  if (!body) return;
  const headers = Array.from(table.querySelectorAll<HTMLTableCellElement>("thead th"));
  headers.forEach((th, column) => {
    const kind = th.dataset.sort;
    if (kind === undefined) return;
    if (kind !== "number" && kind !== "text") invalid("data-sort", kind);
    const button = th.ownerDocument.createElement("button");
    button.type = "button";
    button.className = "sort-button";
    button.append(...Array.from(th.childNodes));
    th.replaceChildren(button);
    button.addEventListener("click", () => {
      const current = th.getAttribute("aria-sort");
      const first: SortDirection = kind === "number" ? "descending" : "ascending";
      const direction: SortDirection =
        current === first ? (first === "ascending" ? "descending" : "ascending") : first;
      for (const other of headers) other.removeAttribute("aria-sort");
      th.setAttribute("aria-sort", direction);
      const rows = Array.from(body.rows);
      rows.sort((r1, r2) =>
        compareKeys(cellKey(r1.cells[column], kind), cellKey(r2.cells[column], kind), direction),
      );
      body.append(...rows);
    });
  });
}
