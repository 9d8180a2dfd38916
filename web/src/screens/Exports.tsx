import { useState } from "preact/hooks";
import { request } from "../api";
import { fmtDate, t, type Key } from "../i18n";
import { START_EXPORT } from "../ops";
import { cleanFilter, review } from "../reviewFilter";
import type { CommentFilter, ExportFormat, StartExportMutation, StartExportMutationVariables } from "../generated/graphql";
import { ErrorLine, Panel, ProgressBar, StateBadge, displayId, errorText, useLiveTasks } from "../shared";
import { TaskResult } from "./Tasks";

const FILTER_LABEL: Record<string, Key> = {
  groupIds: "communities", postIds: "posts", keywordIds: "keywords", matched: "matchedOnly", text: "text",
  authorIds: "author", since: "since", until: "until", viewed: "viewed", archived: "archived",
};

/** The Review filter as an operator reads it: "Communities: 1 · Matched only: yes · Text: окошке". */
function filterText(filter: CommentFilter): string {
  const value = (k: string, v: unknown): string => {
    if (Array.isArray(v)) return v.map((x) => displayId(String(x))).join(", ");
    if (typeof v === "boolean") return t(v ? "yes" : "no");
    return k === "since" || k === "until" ? fmtDate(String(v)) : String(v);
  };
  const parts = Object.entries(filter).map(([k, v]) => `${FILTER_LABEL[k] ? t(FILTER_LABEL[k]) : k}: ${value(k, v)}`);
  return parts.join(" · ") || t("all");
}

export function Exports() {
  const [format, setFormat] = useState<ExportFormat>("CSV");
  const [error, setError] = useState<string | null>(null);
  const exportsList = useLiveTasks({ kinds: ["EXPORT"] }, 50);
  const filter = cleanFilter(review.value.filter);
  async function start(e: Event) {
    e.preventDefault();
    try {
      const d = await request<StartExportMutation, StartExportMutationVariables>(START_EXPORT, { input: { filter, format } });
      setError(d.startExport.errors.map((x) => x.message).join("; ") || null);
    } catch (err) { setError(errorText(err)); }
  }
  return (
    <div class="grid">
      <Panel title={t("startExport")}>
        <form onSubmit={start} class="stack">
          <p>{t("exportFilter")} <span data-testid="export-filter">{filterText(filter)}</span></p>
          <fieldset class="inline">
            <legend>{t("format")}</legend>
            {(["CSV", "XLSX", "JSONL"] as const).map((f) => (
              <label><input type="radio" name="format" value={f} checked={format === f} onChange={() => setFormat(f)} /> {f}</label>
            ))}
          </fieldset>
          <button type="submit">{t("startExport")}</button>
        </form>
        <ErrorLine error={error ?? exportsList.error} />
      </Panel>
      <Panel title={t("exports")}>
        <ul class="task-list">
          {exportsList.tasks.map((task) => (
            <li data-task={task.id}><StateBadge state={task.state} /> #{displayId(task.id)} {String(task.params?.format ?? "")} <ProgressBar task={task} /> <TaskResult task={task} /></li>
          ))}
        </ul>
      </Panel>
    </div>
  );
}
