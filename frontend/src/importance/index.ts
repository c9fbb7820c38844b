export type { ImportanceOverview, ImportanceResult, TokenMove } from "./importanceTypes";
export { formatSig } from "./formatSig";
export { renderImportance } from "./renderImportance";
export { importancePanel, type ImportancePanelOptions } from "./importancePanel";
export { overviewPoints } from "./overviewPoints";
export { drawOverview, importanceOverview } from "./importanceOverview";
export { mountImportance } from "./mountImportance";
