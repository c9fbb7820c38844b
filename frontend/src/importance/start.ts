// Side-effect entry imported by src/main.ts: the feature page's importance card and the SAE overview.
import "./importance.css";
import { mountImportance } from "./mountImportance";

mountImportance(document);
