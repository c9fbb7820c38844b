// Side-effect entry imported by src/main.ts: the steering styles, and the panel on the steering page.
import "./steer.css";
import { mountSteer } from "./mountSteer";

mountSteer(document);
