import { useEffect, useState } from "preact/hooks";
import type { ComponentChildren } from "preact";
import { request, subscribe, ApiError } from "./api";
import { fill, fmtDate, fmtNum, kindName, progressText, stateName, t } from "./i18n";
import { TASK_EVENTS, TASK_PROGRESS, TASKS } from "./ops";
import type { TaskEventsSubscription, TaskFieldsFragment, TaskProgressSubscription, TaskState, TasksQuery, TasksQueryVariables } from "./generated/graphql";

export type Task = TaskFieldsFragment;

export function errorText(e: unknown): string {
  if (e instanceof ApiError) return e.code === "NETWORK" ? t("networkError") : e.message;
  return String(e);
}

/** What an operator reads for an object's id: the row id inside a Relay global id (base64 of
 * "Type:row id", graphql_api/ids.py), the number `vkcp token list`, logs and scripts use.
 * Display only: the API is always sent the global id. Anything else shows as it is. */
export function displayId(id: string): string {
  try {
    const row = /^[A-Za-z]+:([0-9]+)$/.exec(atob(id));
    if (row) return row[1];
  } catch {
    /* not base64: a plain id already */
  }
  return id;
}

/** A mutation payload's errors as one line, each with its code: "Unknown time zone … (BAD_USER_INPUT)". */
export function payloadErrors(errors: { code: string; message: string }[]): string | null {
  return errors.map((e) => `${e.message} (${e.code})`).join("; ") || null;
}

export function ProgressBar({ task }: { task: Task }) {
  const { done, total } = task.progress;
  const message = progressText(task.progress);
  const finished = task.state === "SUCCEEDED";
  const percent = finished ? 100 : total ? Math.min(100, Math.round((done / total) * 100)) : null;
  return (
    <div class="progress-wrap">
      <div
        class={`progress ${task.state.toLowerCase()}`}
        role="progressbar"
        aria-label={`${kindName(task.kind)} ${displayId(task.id)}`}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={percent ?? undefined}
      >
        <div class="bar" style={{ width: `${percent ?? 100}%` }} data-indeterminate={percent == null} />
      </div>
      <span class="progress-text">
        {percent != null ? `${percent}%` : ""} {message || `${fmtNum(done)}${total != null ? ` / ${fmtNum(total)}` : ""}`}
      </span>
    </div>
  );
}

/** A task's state; a QUEUED task waiting for VK (every token rests) says so, and until when. */
export function StateBadge({ state, waitingUntil }: { state: TaskState; waitingUntil?: string | null }) {
  if (state === "QUEUED" && waitingUntil) {
    return (
      <span class="badge state-waiting" data-state={state} data-waiting-until={waitingUntil} title={fill("waitingUntil", { when: fmtDate(waitingUntil) })}>
        {t("stateWAITING")}
      </span>
    );
  }
  return <span class={`badge state-${state.toLowerCase()}`} data-state={state}>{stateName(state)}</span>;
}

/** "resumes by itself 08/12/2026, 03:00": when a task waiting for VK resumes, in the browser's zone
 * (its progress message says it in UTC). */
export function WaitingNote({ task }: { task: Task }) {
  if (task.state !== "QUEUED" || !task.waitingUntil) return null;
  return <span class="waiting-note" data-testid="waiting-until">{fill("waitingUntil", { when: fmtDate(task.waitingUntil) })}</span>;
}

/** The tasks matching `states`, kept current by `taskEvents`. */
export function useLiveTasks(filter: TasksQueryVariables["filter"], first = 50): { tasks: Task[]; error: string | null; reload: () => void } {
  const [tasks, setTasks] = useState<Task[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [nonce, setNonce] = useState(0);
  const key = JSON.stringify(filter);
  useEffect(() => {
    let alive = true;
    request<TasksQuery, TasksQueryVariables>(TASKS, { filter, first })
      .then((d) => alive && setTasks(d.tasks.edges.map((e) => e.node)))
      .catch((e) => alive && setError(errorText(e)));
    const stop = subscribe<TaskEventsSubscription>(TASK_EVENTS, {}, (d) => {
      const task = d.taskEvents;
      const wanted = !filter?.states || filter.states.includes(task.state);
      const kindOk = !filter?.kinds || filter.kinds.includes(task.kind);
      setTasks((list) => {
        const rest = list.filter((x) => x.id !== task.id);
        if (!kindOk) return list;
        if (!wanted) return rest;
        const known = list.some((x) => x.id === task.id);
        return known ? list.map((x) => (x.id === task.id ? task : x)) : [task, ...rest];
      });
    });
    return () => {
      alive = false;
      stop();
    };
  }, [key, nonce]);
  return { tasks, error, reload: () => setNonce((n) => n + 1) };
}

/** One task, live through `taskProgress` until it is final. */
export function useTaskProgress(initial: Task | null): Task | null {
  const [task, setTask] = useState(initial);
  useEffect(() => {
    setTask(initial);
    if (!initial) return;
    return subscribe<TaskProgressSubscription>(TASK_PROGRESS, { id: initial.id }, (d) => setTask(d.taskProgress));
  }, [initial?.id]);
  return task;
}

export function Panel({ title, children, actions }: { title: string; children: ComponentChildren; actions?: ComponentChildren }) {
  return (
    <section class="panel" aria-label={title}>
      <header class="panel-head">
        <h2>{title}</h2>
        {actions}
      </header>
      {children}
    </section>
  );
}

export function ErrorLine({ error }: { error: string | null }) {
  return error ? <p class="error" role="alert">{error}</p> : null;
}

export type PickOption = { id: string; label: string };

/** Several of a list (communities, keywords): checkboxes, so each option shows and announces
 * whether it is chosen; a search box once the list is long. */
export function MultiPick({ label, name, options, value, onChange }: {
  label: string; name: string; options: PickOption[]; value: string[]; onChange: (ids: string[]) => void;
}) {
  const [find, setFind] = useState("");
  const chosen = new Set(value);
  const needle = find.trim().toLowerCase();
  const shown = needle ? options.filter((o) => chosen.has(o.id) || o.label.toLowerCase().includes(needle)) : options;
  const flip = (id: string) => onChange(chosen.has(id) ? value.filter((v) => v !== id) : [...value, id]);
  return (
    <fieldset class="multi-pick" data-pick={name}>
      <legend>
        {label}
        {value.length > 0 && (
          <>
            {" "}<span class="pick-count">{value.length} {t("selected")}</span>
            <button type="button" class="pick-clear" aria-label={`${t("clearChoice")}: ${label}`} onClick={() => onChange([])}>×</button>
          </>
        )}
      </legend>
      {options.length > 8 && (
        <input type="search" class="pick-find" aria-label={`${t("find")}: ${label}`} placeholder={t("find")} value={find} onInput={(e) => setFind(e.currentTarget.value)} />
      )}
      <ul class="pick-options">
        {shown.map((o) => (
          <li key={o.id}>
            <label class={chosen.has(o.id) ? "on" : ""}>
              <input type="checkbox" name={name} value={o.id} checked={chosen.has(o.id)} onChange={() => flip(o.id)} />
              <span>{o.label}</span>
            </label>
          </li>
        ))}
        {options.length === 0 && <li class="muted">{t("none")}</li>}
      </ul>
    </fieldset>
  );
}
