import { useState } from "preact/hooks";
import { download, request } from "../api";
import { count, fill, fmtDate, fmtNum, kindName, t, type Key } from "../i18n";
import { CANCEL_TASK } from "../ops";
import type { CancelTaskMutation } from "../generated/graphql";
import { ErrorLine, Panel, ProgressBar, StateBadge, WaitingNote, displayId, errorText, payloadErrors, useLiveTasks, type Task } from "../shared";

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

type Result = Record<string, unknown>;
const num = (v: unknown): number => (typeof v === "number" ? v : Number(v) || 0);

/** What is left of a result once its known fields are said: compact "key: value" pairs. */
function rest(result: Result, known: string[]): string {
  return Object.entries(result)
    .filter(([k]) => !known.includes(k))
    .map(([k, v]) => `${k}: ${typeof v === "object" && v !== null ? JSON.stringify(v) : String(v)}`)
    .join(", ");
}

const PARSE_KEYS = ["posts", "postsRead", "commentsSeen", "matches", "skippedPosts", "authorsLookedUp", "vkCalls"];
const ANALYZE_KEYS = ["comments", "matchedComments", "matches", "keywords"];
const EXPORT_KEYS = ["url", "rows", "format", "file", "fileName", "bytes", "timeZone", "delimiter"];
const DELIMITER_LABEL: Record<string, Key> = { COMMA: "comma", SEMICOLON: "semicolon", TAB: "tab" };

function ParseResult({ result }: { result: Result }) {
  const skipped = Array.isArray(result.skippedPosts) ? (result.skippedPosts as { postId?: number; reason?: string }[]) : [];
  const authors = num(result.authorsLookedUp);
  const text = fill("parseResult", {
    posts: count("nPosts", num(result.posts)), postsRead: fmtNum(num(result.postsRead)),
    comments: count("nComments", num(result.commentsSeen)), matches: count("nMatches", num(result.matches)),
  }) + (authors ? `, ${count("nAuthorsLookedUp", authors)}` : "");
  // what the run cost in VK calls, per method (the schedule's budget is projected from it)
  const calls = result.vkCalls && typeof result.vkCalls === "object" ? Object.entries(result.vkCalls as Record<string, unknown>) : [];
  return (
    <>
      {text}
      {calls.length > 0 && <div class="muted" data-testid="vk-calls">{fill("vkCallsResult", { calls: calls.map(([m, n]) => `${m} ${fmtNum(num(n))}`).join(", ") })}</div>}
      {skipped.length > 0 && (
        <details class="skipped">
          <summary>{count("nSkippedPosts", skipped.length)}</summary>
          <ul>{skipped.map((p) => <li>{t("post")} {p.postId}: {p.reason}</li>)}</ul>
        </details>
      )}
    </>
  );
}

function analyzeText(result: Result): string {
  return fill("analyzeResult", {
    comments: count("nComments", num(result.comments)), keywords: count("nKeywords", num(result.keywords)),
    keywordCount: fmtNum(num(result.keywords)), matchedComments: count("nMatchedComments", num(result.matchedComments)),
    matches: count("nMatches", num(result.matches)),
  });
}

function exportText(result: Result): string {
  const parts = [String(result.fileName ?? result.file ?? "")];
  if (result.timeZone) parts.push(fill("timesIn", { zone: String(result.timeZone) }));
  const delimiter = DELIMITER_LABEL[String(result.delimiter)];
  if (delimiter) parts.push(`${t("delimiter")}: ${t(delimiter)}`);
  return parts.filter(Boolean).join(" · ");
}

/** A task's outcome as an operator reads it: its error, or a short sentence for each kind's
 * result (domain/collect.py, analyze.py, export.py make them), any other fields as key: value. */
export function TaskResult({ task }: { task: Task }) {
  if (task.error) return <span class="error-cell">{task.error}</span>;
  const result = task.result as Result | null;
  if (!result || typeof result !== "object") return result == null ? null : <div class="result">{String(result)}</div>;
  const known = { PARSE: PARSE_KEYS, ANALYZE: ANALYZE_KEYS, EXPORT: EXPORT_KEYS, INDEX_RULES: [] as string[] }[task.kind] ?? [];
  const extra = rest(result, known);
  return (
    <div class="result" data-result-kind={task.kind}>
      {task.kind === "PARSE" && <ParseResult result={result} />}
      {task.kind === "ANALYZE" && analyzeText(result)}
      {task.kind === "EXPORT" && (
        <>
          {typeof result.url === "string" && <DownloadButton url={result.url} label={`${t("download")} (${count("nRows", num(result.rows))}, ${result.format})`} />}
          {" "}{exportText(result)}
        </>
      )}
      {extra && <span class="result-extra">{known.length ? " · " : ""}{extra}</span>}
    </div>
  );
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
              <td data-kind={task.kind}>{kindName(task.kind)}{task.group ? ` · ${task.group.name}` : ""}</td>
              <td><StateBadge state={task.state} waitingUntil={task.waitingUntil} /><WaitingNote task={task} /></td>
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
