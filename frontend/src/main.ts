// Entry point loaded by {% vite_asset "src/main.ts" %} on every page.
import "./styles.css";
import "./steer/start";
import "./importance/start";
import { enhance, initTheme } from "./index";

initTheme(document);
enhance(document);
