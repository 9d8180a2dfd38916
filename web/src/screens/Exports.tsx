import { useState } from "preact/hooks";
import { request } from "../api";
import { t } from "../i18n";
import { START_EXPORT } from "../ops";
import { cleanFilter, review } from "../reviewFilter";
import type { ExportFormat, StartExportMutation, StartExportMutationVariables } from "../generated/graphql";
import { ErrorLine, Panel, ProgressBar, StateBadge, errorText, useLiveTasks } from "../shared";
import { TaskResult } from "./Tasks";

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
          <p>{t("exportFilter")} <code data-testid="export-filter">{JSON.stringify(filter)}</code></p>
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
            <li data-task={task.id}><StateBadge state={task.state} /> #{task.id} {String(task.params?.format ?? "")} <ProgressBar task={task} /> <TaskResult task={task} /></li>
          ))}
        </ul>
      </Panel>
    </div>
  );
}
