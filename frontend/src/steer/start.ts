// Side-effect entry imported by src/main.ts: the steering styles, and the panel on the steering page.
import "./steer.css";
import { mountSteer } from "./mountSteer";

// On a feature page the panel sits in a closed <details>: start it (and its generation) only
// when the reader opens it.
const lazy = document.querySelector("[data-steer]")?.closest("details");
if (lazy && !lazy.open) {
  lazy.addEventListener("toggle", () => mountSteer(document), { once: true });
} else {
  mountSteer(document);
}
