import { useState } from "preact/hooks";
import { download, request } from "../api";
import { fmtDate, t } from "../i18n";
import { CANCEL_TASK } from "../ops";
import type { CancelTaskMutation } from "../generated/graphql";
import { ErrorLine, Panel, ProgressBar, StateBadge, displayId, errorText, payloadErrors, useLiveTasks, type Task } from "../shared";

const FINAL = ["SUCCEEDED", "FAILED", "CANCELLED"];

function DownloadButton({ url, label }: { url: string; label: string }) {
  const [error, setError] = useState<string | null>(null);
  return (
    <>
      <button type="button" onClick={() => download(url).then(() => setError(null), (e) => setError(errorText(e)))}>{label}</button>
      <ErrorLine error={error} />
    </>
  );
}

export function TaskResult({ task }: { task: Task }) {
  if (task.error) return <span class="error-cell">{task.error}</span>;
  if (!task.result) return null;
  if (task.kind === "EXPORT" && task.result.url) {
    return <DownloadButton url={task.result.url} label={`${t("download")} (${task.result.rows} ${t("rows")}, ${task.result.format})`} />;
  }
  return <code class="result">{JSON.stringify(task.result)}</code>;
}

export function Tasks() {
  const { tasks, error } = useLiveTasks(null, 100);
  const [problem, setProblem] = useState<string | null>(null);
  async function cancel(task: Task) {
    try {
      const d = await request<CancelTaskMutation>(CANCEL_TASK, { id: task.id });
      setProblem(payloadErrors(d.cancelTask.errors));
    } catch (e) { setProblem(errorText(e)); }
  }
  return (
    <Panel title={t("tasks")}>
      <ErrorLine error={problem ?? error} />
      <table class="tasks">
        <thead><tr><th scope="col">#</th><th scope="col">{t("kind")}</th><th scope="col">{t("state")}</th><th scope="col">{t("progress")}</th><th scope="col">{t("created")}</th><th scope="col">{t("result")}</th><th scope="col">{t("actions")}</th></tr></thead>
        <tbody>
          {tasks.map((task) => (
            <tr data-task={task.id}>
              <td>{displayId(task.id)}</td>
              <td>{task.kind}{task.group ? ` · ${task.group.name}` : ""}</td>
              <td><StateBadge state={task.state} /></td>
              <td class="progress-cell"><ProgressBar task={task} /></td>
              <td>{fmtDate(task.createdAt)}</td>
              <td><TaskResult task={task} /></td>
              <td>{!FINAL.includes(task.state) && !task.cancelRequested && <button type="button" class="danger" onClick={() => cancel(task)}>{t("cancelTask")}</button>}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Panel>
  );
}
