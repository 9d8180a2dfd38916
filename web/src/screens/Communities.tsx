import { useEffect, useRef, useState } from "preact/hooks";
import { request } from "../api";
import { budgetWarningText, count, fill, fmtDate, fmtNum, t } from "../i18n";
import { ADD_GROUPS, GROUP_COUNTS, GROUPS, REFRESH_GROUP, REMOVE_GROUP, START_PARSE, UPDATE_GROUP, VK_BUDGET } from "../ops";
import type {
  AddGroupsMutation, AddGroupsMutationVariables, GroupCountsQuery, GroupCountsQueryVariables, GroupFieldsFragment, GroupsQuery, GroupsQueryVariables,
  RefreshGroupMutation, RemoveGroupMutation, StartParseMutation, StartParseMutationVariables,
  UpdateGroupMutation, UpdateGroupMutationVariables, VkBudgetQuery,
} from "../generated/graphql";
import { ErrorLine, Panel, ProgressBar, StateBadge, WaitingNote, errorText, useLiveTasks } from "../shared";

type Group = GroupFieldsFragment;
type LineResult = { ref: string; ok: boolean; text: string };

const COUNTS_EVERY_MS = 1000; // how often a running parse's comment count is read again, at most

type Budget = VkBudgetQuery["vkBudget"];

/** The monitoring schedule's projected VK calls a day against the pool's daily budget. */
function BudgetPanel({ budget }: { budget: Budget | null }) {
  if (!budget) return null;
  return (
    <Panel title={t("budget")}>
      <div class="budget" data-fits={budget.fits ? "yes" : "no"}>
        <p>
          <span class={`badge ${budget.fits ? "fits" : "no-fit"}`} data-testid="budget-fits">{t(budget.fits ? "fits" : "doesNotFit")}</span>{" "}
          {fill("budgetSummary", { calls: count("nCalls", budget.projectedCalls), tokens: count("nTokens", budget.usableTokens) })}
        </p>
        <table class="budget-methods">
          <thead><tr><th scope="col">{t("method")}</th><th scope="col">{t("projectedCalls")}</th><th scope="col">{t("dailyLimit")}</th><th scope="col">{t("state")}</th></tr></thead>
          <tbody>
            {budget.methods.map((m) => (
              <tr data-method={m.method} class={m.fits ? "" : "no-fit"}>
                <td><code>{m.method}</code></td>
                <td class="num">{fmtNum(m.projectedCalls)}</td>
                <td class="num">{m.limit == null ? t("noLimit") : `${fmtNum(m.limit)} (${fmtNum(budget.usableTokens)} × ${fmtNum(m.limitPerToken)})`}</td>
                <td>{t(m.fits ? "fits" : "doesNotFit")}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {budget.communities.length === 0 ? <p class="muted">{t("noMonitoring")}</p> : (
          <table class="budget-communities">
            <thead><tr><th scope="col">{t("community")}</th><th scope="col">{t("runsPerDay")}</th><th scope="col">{t("callsPerRun")}</th><th scope="col">{t("projectedCalls")}</th></tr></thead>
            <tbody>
              {budget.communities.map((c) => (
                <tr data-budget-group={c.group?.id}>
                  <td>{c.group?.name ?? "—"}</td>
                  <td class="num">{fmtNum(Math.round(c.runsPerDay * 10) / 10)}</td>
                  <td class="num">{fmtNum(c.callsPerRun)}{c.estimated && <span class="muted"> ({t("estimated")})</span>}</td>
                  <td class="num">{fmtNum(c.projectedCalls)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </div>
    </Panel>
  );
}

function GroupEditor({ group, onSaved, onCancel }: { group: Group; onSaved: (g: Group) => void; onCancel: () => void }) {
  const [active, setActive] = useState(group.active);
  const [maxPosts, setMaxPosts] = useState(group.maxPosts?.toString() ?? "");
  const [since, setSince] = useState(group.since?.slice(0, 10) ?? "");
  const [enabled, setEnabled] = useState(group.monitoring.enabled);
  const [interval, setInterval] = useState(group.monitoring.intervalMinutes.toString());
  const [priority, setPriority] = useState(group.monitoring.priority.toString());
  const [error, setError] = useState<string | null>(null);
  async function save(e: Event) {
    e.preventDefault();
    try {
      const d = await request<UpdateGroupMutation, UpdateGroupMutationVariables>(UPDATE_GROUP, {
        id: group.id,
        input: {
          active,
          maxPosts: maxPosts ? Number(maxPosts) : null,
          since: since ? `${since}T00:00:00Z` : null,
          monitoring: { enabled, intervalMinutes: Number(interval), priority: Number(priority) },
        },
      });
      if (d.updateGroup.errors.length) setError(d.updateGroup.errors.map((x) => x.message).join("; "));
      else if (d.updateGroup.group) onSaved(d.updateGroup.group);
    } catch (err) {
      setError(errorText(err));
    }
  }
  const id = (s: string) => `g${group.id}-${s}`;
  return (
    <form class="editor" onSubmit={save}>
      <label><input type="checkbox" checked={active} onChange={(e) => setActive(e.currentTarget.checked)} /> {t("active")}</label>
      <label for={id("max")}>{t("maxPosts")}</label><input id={id("max")} type="number" min={1} value={maxPosts} onInput={(e) => setMaxPosts(e.currentTarget.value)} />
      <label for={id("since")}>{t("since")}</label><input id={id("since")} type="date" value={since} onInput={(e) => setSince(e.currentTarget.value)} />
      <label><input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.currentTarget.checked)} /> {t("monitoring")}</label>
      <label for={id("int")}>{t("interval")}</label><input id={id("int")} type="number" min={1} value={interval} onInput={(e) => setInterval(e.currentTarget.value)} />
      <label for={id("prio")}>{t("priority")}</label><input id={id("prio")} type="number" value={priority} onInput={(e) => setPriority(e.currentTarget.value)} />
      <button type="submit">{t("save")}</button>
      <button type="button" class="secondary" onClick={onCancel}>{t("cancel")}</button>
      <ErrorLine error={error} />
    </form>
  );
}

export function Communities() {
  const [groups, setGroups] = useState<Group[]>([]);
  const [refs, setRefs] = useState("");
  const [results, setResults] = useState<LineResult[]>([]);
  const [editing, setEditing] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [budget, setBudget] = useState<Budget | null>(null);
  const parses = useLiveTasks({ kinds: ["PARSE"] }, 100);
  // the schedule's budget moves with the monitored communities and with each run's measured cost
  const loadBudget = () => request<VkBudgetQuery>(VK_BUDGET).then((d) => setBudget(d.vkBudget)).catch((e) => setError(errorText(e)));

  async function load() {
    try {
      const all: Group[] = [];
      let after: string | null = null;
      do {
        const d: GroupsQuery = await request<GroupsQuery, GroupsQueryVariables>(GROUPS, { first: 100, after });
        all.push(...d.groups.edges.map((e) => e.node));
        after = d.groups.pageInfo.hasNextPage ? d.groups.pageInfo.endCursor ?? null : null;
      } while (after);
      setGroups(all);
    } catch (e) {
      setError(errorText(e));
    }
    loadBudget();
  }
  // a finished parse changes the counts and the last collection: read the list again
  const finished = parses.tasks.filter((x) => ["SUCCEEDED", "FAILED", "CANCELLED"].includes(x.state)).map((x) => x.id).join();
  useEffect(() => { load(); }, [finished]);

  // A running parse stores comments batch by batch, and its community's count moves with them:
  // as its progress arrives, read the counts of the communities being parsed again, at most every
  // COUNTS_EVERY_MS (a throttle, not a debounce: progress arrives more often than that).
  // (a parse that waits for VK has stored what it read so far: its count is read once more then)
  const parsing = parses.tasks.filter((x) => (x.state === "RUNNING" || (x.state === "QUEUED" && x.waitingUntil)) && x.group);
  const parsingIds = useRef<string[]>([]);
  parsingIds.current = parsing.map((x) => x.group!.id);
  const countsTimer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const countsReadAt = useRef(0);
  async function readCounts() {
    countsTimer.current = null;
    countsReadAt.current = Date.now();
    const ids = parsingIds.current;
    if (!ids.length) return;
    try {
      const d = await request<GroupCountsQuery, GroupCountsQueryVariables>(GROUP_COUNTS, { ids });
      const counts = new Map(d.nodes.flatMap((n) => (n && "commentsCount" in n ? [[n.id, n.commentsCount] as const] : [])));
      setGroups((list) => list.map((g) => (counts.has(g.id) ? { ...g, commentsCount: counts.get(g.id)! } : g)));
    } catch {
      /* the next progress event tries again; the list is read in full when the parse ends */
    }
  }
  const progressed = parsing.map((x) => `${x.id}:${x.progress.done}:${x.updatedAt}`).join();
  useEffect(() => {
    if (!progressed || countsTimer.current) return;
    countsTimer.current = setTimeout(readCounts, Math.max(0, countsReadAt.current + COUNTS_EVERY_MS - Date.now()));
  }, [progressed]);
  useEffect(() => () => { if (countsTimer.current) clearTimeout(countsTimer.current); }, []);

  async function add(e: Event) {
    e.preventDefault();
    const lines = refs.split("\n").map((s) => s.trim()).filter(Boolean);
    if (!lines.length) return;
    setBusy(true);
    try {
      const d = await request<AddGroupsMutation, AddGroupsMutationVariables>(ADD_GROUPS, { refs: lines });
      setResults(d.addGroups.results.map((r) => ({
        ref: r.ref, ok: r.errors.length === 0,
        text: r.errors.length ? r.errors.map((x) => x.message).join("; ") : `${t("added")}: ${r.group?.name}`,
      })));
      setRefs(d.addGroups.results.filter((r) => r.errors.length).map((r) => r.ref).join("\n"));
      await load();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  }

  async function act(fn: () => Promise<string | null>) {
    setError(null);
    try {
      const problem = await fn();
      if (problem) setError(problem);
    } catch (err) {
      setError(errorText(err));
    }
  }
  const parse = (g: Group) => act(async () => {
    const d = await request<StartParseMutation, StartParseMutationVariables>(START_PARSE, { input: { groupIds: [g.id] } });
    return d.startParse.errors.map((x) => x.message).join("; ") || null;
  });
  const refresh = (g: Group) => act(async () => {
    const d = await request<RefreshGroupMutation>(REFRESH_GROUP, { id: g.id });
    if (d.refreshGroup.group) setGroups((list) => list.map((x) => (x.id === g.id ? d.refreshGroup.group! : x)));
    return d.refreshGroup.errors.map((x) => x.message).join("; ") || null;
  });
  const remove = (g: Group) => act(async () => {
    if (!confirm(`${g.name}: ${t("confirmRemove")}`)) return null;
    const d = await request<RemoveGroupMutation>(REMOVE_GROUP, { id: g.id });
    if (!d.removeGroup.errors.length) setGroups((list) => list.filter((x) => x.id !== g.id));
    return d.removeGroup.errors.map((x) => x.message).join("; ") || null;
  });

  const budgetShortfall = budget ? budgetWarningText(budget) : null;
  const latestParse = (g: Group) => parses.tasks.find((task) => task.group?.id === g.id);
  return (
    <div class="grid">
      <Panel title={t("add")}>
        <form onSubmit={add} class="stack">
          <label for="refs">{t("addRefs")}</label>
          <textarea id="refs" rows={4} value={refs} onInput={(e) => setRefs(e.currentTarget.value)} placeholder="https://vk.com/koshki_spb" />
          <button type="submit" disabled={busy}>{t("add")}</button>
        </form>
        {results.length > 0 && (
          <ul class="line-results" aria-live="polite">
            {results.map((r) => <li class={r.ok ? "ok" : "fail"}><code>{r.ref}</code> — {r.text}</li>)}
          </ul>
        )}
      </Panel>
      <ErrorLine error={error ?? parses.error} />
      {budgetShortfall && <p class="budget-warning" role="alert" data-testid="budget-warning">⚠ {budgetShortfall}</p>}
      <Panel title={`${t("communities")} (${groups.length})`}>
        <table class="groups">
          <thead><tr><th scope="col">{t("name")}</th><th scope="col">{t("members")}</th><th scope="col">{t("comments")}</th><th scope="col">{t("monitoring")}</th><th scope="col">{t("lastCollected")}</th><th scope="col">{t("progress")}</th><th scope="col">{t("actions")}</th></tr></thead>
          <tbody>
            {groups.map((g) => {
              const task = latestParse(g);
              return [
                <tr data-group={g.screenName}>
                  <td>
                    <a href={g.url} target="_blank" rel="noopener noreferrer">{g.name}</a>
                    {!g.active && <span class="badge">{t("active")}: {t("no")}</span>}
                    {g.isClosed && <span class="badge">closed</span>}
                    {g.monitoring.lastError && <div class="error-cell">{g.monitoring.lastError}</div>}
                  </td>
                  <td>{fmtNum(g.membersCount)}</td>
                  <td data-count="comments">{fmtNum(g.commentsCount)}</td>
                  <td>{g.monitoring.enabled ? `${t("yes")}, ${g.monitoring.intervalMinutes}` : t("no")}</td>
                  <td>{fmtDate(g.monitoring.lastSuccessAt)}</td>
                  <td class="progress-cell">{task && <><StateBadge state={task.state} waitingUntil={task.waitingUntil} /><WaitingNote task={task} />{task.error && <span class="error-cell"> {task.error}</span>}<ProgressBar task={task} /></>}</td>
                  <td class="actions">
                    <button type="button" onClick={() => parse(g)}>{t("parse")}</button>
                    <button type="button" class="secondary" onClick={() => setEditing(editing === g.id ? null : g.id)}>{t("edit")}</button>
                    <button type="button" class="secondary" onClick={() => refresh(g)}>{t("refresh")}</button>
                    <button type="button" class="danger" onClick={() => remove(g)}>{t("remove")}</button>
                  </td>
                </tr>,
                editing === g.id && (
                  <tr><td colSpan={7}>
                    <GroupEditor group={g} onCancel={() => setEditing(null)} onSaved={(saved) => { setGroups((list) => list.map((x) => (x.id === saved.id ? saved : x))); setEditing(null); loadBudget(); }} />
                  </td></tr>
                ),
              ];
            })}
          </tbody>
        </table>
      </Panel>
      <BudgetPanel budget={budget} />
    </div>
  );
}
