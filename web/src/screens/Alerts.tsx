// Alert rules and their deliveries. A rule: which matched comments (the Review screen's filter
// controls) go to which channels (webhook URLs, signed; any other scheme an Apprise URL), and
// how (instantly, as a digest, past a threshold). Admins create and change rules; the service
// shows channels masked, and none to viewers. The webhook secret is shown once, on creation.
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, request } from "../api";
import { fill, fmtDate, fmtNum, lang, t, type Key } from "../i18n";
import {
  ADMIN_PROBE, ALERT_DELIVERIES, ALERT_RULES, CREATE_ALERT_RULE, FILTER_OPTIONS, REMOVE_ALERT_RULE, TEST_ALERT_RULE, UPDATE_ALERT_RULE,
} from "../ops";
import { cleanFilter } from "../reviewFilter";
import type {
  AlertDeliveriesQuery, AlertDeliveriesQueryVariables, AlertDeliveryState, AlertLanguage, AlertMode, AlertRuleFieldsFragment,
  AlertRuleInput, AlertRulesQuery, CommentFilter, CreateAlertRuleMutation, CreateAlertRuleMutationVariables, FilterOptionsQuery,
  RemoveAlertRuleMutation, SystemEvent, TestAlertRuleMutation, UpdateAlertRuleMutation, UpdateAlertRuleMutationVariables,
} from "../generated/graphql";
import { FilterFields, statusName } from "../filterFields";
import { ErrorLine, Panel, displayId, errorText, payloadErrors } from "../shared";

type Rule = AlertRuleFieldsFragment;
type Delivery = AlertDeliveriesQuery["alertDeliveries"]["edges"][number]["node"];
type TestResult = TestAlertRuleMutation["testAlertRule"]["results"][number];

const MODES: AlertMode[] = ["INSTANT", "DIGEST", "THRESHOLD"];
const STATES: AlertDeliveryState[] = ["PENDING", "SENT", "FAILED", "SKIPPED"];
const EVENTS: SystemEvent[] = ["TASK_FAILED", "TOKENS_DOWN", "COMMUNITY_LATE", "TASK_STALLED", "CHANNEL_FAILING"];
const MAX_CHANNELS = 10;
const PAGE = 50;
const POLL_MS = 5000; // the deliveries log follows sending while the screen is open

/** What is wrong with a channel URL before the service is asked, or null. The service has the
 * last word (INVALID_CHANNEL: a scheme Apprise does not know, a URL it cannot parse). */
export function channelProblem(url: string): Key | null {
  const value = url.trim();
  if (!value) return "channelEmpty";
  if (/\s/.test(value) || !/^[a-z][a-z0-9+.-]*:\/\/./i.test(value)) return "channelNotUrl";
  if (/^https?:/i.test(value)) {
    try {
      if (!new URL(value).hostname) return "channelBadWebhook";
    } catch {
      return "channelBadWebhook";
    }
  }
  return null;
}

/** "signed webhook" or "Apprise: tgram" for a channel URL. */
function channelKind(url: string): string {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url.trim())?.[1]?.toLowerCase();
  if (!scheme) return "";
  return scheme === "http" || scheme === "https" ? t("channelWebhook") : fill("channelApprise", { scheme });
}

const muted = (r: Rule) => Boolean(r.mutedUntil && new Date(r.mutedUntil).getTime() > Date.now());
const modeName = (m: AlertMode) => t(`mode${m}` as const);
const deliveryStateName = (s: AlertDeliveryState) => t(`delivery${s}` as const);
const eventName = (e: SystemEvent) => t(`event${e}` as const);

function modeText(r: Rule): string {
  if (r.mode === "DIGEST") return `${modeName(r.mode)}: ${fill("everyMinutes", { n: fmtNum(r.digestMinutes) })}`;
  if (r.mode === "THRESHOLD") {
    return `${modeName(r.mode)}: ${fill("thresholdText", { count: fmtNum(r.thresholdCount), minutes: fmtNum(r.thresholdMinutes) })}`;
  }
  return modeName(r.mode);
}

/** A rule's filter as an operator reads it: "Keyword: кошка · Community: Кошки СПб · Text: …". */
function ruleFilterText(f: Rule["filter"], options: FilterOptionsQuery | null): string {
  const names = (ids: readonly string[], edges: { node: { id: string; name?: string; word?: string } }[] | undefined) =>
    ids.map((id) => { const n = edges?.find((e) => e.node.id === id)?.node; return n?.word ?? n?.name ?? displayId(id); }).join(", ");
  const parts: string[] = [];
  if (f.keywordIds?.length) parts.push(`${t("keyword")}: ${names(f.keywordIds, options?.keywords.edges)}`);
  if (f.groupIds?.length) parts.push(`${t("community")}: ${names(f.groupIds, options?.groups.edges)}`);
  if (f.statuses?.length) parts.push(`${t("status")}: ${f.statuses.map(statusName).join(", ")}`);
  if (f.assignees?.length) parts.push(`${t("assignee")}: ${f.assignees.join(", ")}`);
  if (f.tags?.length) parts.push(`${t("tagsFilter")}: ${f.tags.join(", ")}`);
  if (f.text) parts.push(`${t("text")}: ${f.text}`);
  if (f.query) parts.push(`${t("query")}: ${f.query}`);
  if (f.authorIds?.length) parts.push(`${t("author")}: ${f.authorIds.join(", ")}`);
  if (f.since) parts.push(`${t("since")}: ${fmtDate(f.since)}`);
  if (f.until) parts.push(`${t("until")}: ${fmtDate(f.until)}`);
  for (const [label, k] of [["viewed", "viewed"], ["archived", "archived"], ["deletedFilter", "deleted"], ["editedFilter", "edited"]] as const) {
    if (f[k] != null) parts.push(`${t(label)}: ${t(f[k] ? "yes" : "no")}`);
  }
  return parts.join(" · ") || t("everyMatch");
}

/** A stored rule's filter as the CommentFilter input the editor and the API take. */
function filterInput(f: Rule["filter"]): CommentFilter {
  const out: CommentFilter = {};
  if (f.groupIds) out.groupIds = f.groupIds;
  if (f.keywordIds) out.keywordIds = f.keywordIds;
  if (f.statuses) out.statuses = f.statuses;
  if (f.assignees) out.assignees = f.assignees;
  if (f.tags) out.tags = f.tags;
  if (f.text) out.text = f.text;
  if (f.query) out.query = f.query;
  if (f.authorIds) out.authorIds = f.authorIds;
  if (f.since) out.since = f.since;
  if (f.until) out.until = f.until;
  for (const k of ["viewed", "archived", "deleted", "edited"] as const) if (f[k] != null) out[k] = f[k];
  return out;
}

type Draft = {
  name: string; enabled: boolean; mode: AlertMode; digestMinutes: string; thresholdCount: string; thresholdMinutes: string;
  language: AlertLanguage; filter: CommentFilter; channels: string[]; systemEvents: SystemEvent[];
  mutedUntil: string; // a datetime-local value, in the browser's zone; "" = not muted
};

/** An ISO time as a datetime-local input's value (the browser's zone), and back. */
function localInput(iso: string | null | undefined): string {
  if (!iso) return "";
  const d = new Date(iso);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
}
const fromLocalInput = (value: string): string | null => (value ? new Date(value).toISOString() : null);

function draftOf(rule: Rule | null): Draft {
  if (!rule) {
    return {
      name: "", enabled: true, mode: "INSTANT", digestMinutes: "60", thresholdCount: "10", thresholdMinutes: "60",
      language: lang.value === "ru" ? "RU" : "EN", filter: {}, channels: [""], systemEvents: [], mutedUntil: "",
    };
  }
  return {
    name: rule.name, enabled: rule.enabled, mode: rule.mode, language: rule.language,
    digestMinutes: String(rule.digestMinutes ?? 60), thresholdCount: String(rule.thresholdCount ?? 10),
    thresholdMinutes: String(rule.thresholdMinutes ?? 60), filter: filterInput(rule.filter),
    channels: rule.channels.length ? [...rule.channels] : [""], systemEvents: [...rule.systemEvents],
    mutedUntil: localInput(rule.mutedUntil),
  };
}

function inputOf(d: Draft): AlertRuleInput {
  const input: AlertRuleInput = {
    name: d.name.trim(), enabled: d.enabled, mode: d.mode, language: d.language, systemEvents: d.systemEvents,
    filter: cleanFilter(d.filter), channels: d.channels.map((c) => c.trim()), mutedUntil: fromLocalInput(d.mutedUntil),
  };
  if (d.mode === "DIGEST") input.digestMinutes = Number(d.digestMinutes);
  if (d.mode === "THRESHOLD") {
    input.thresholdCount = Number(d.thresholdCount);
    input.thresholdMinutes = Number(d.thresholdMinutes);
  }
  return input;
}

/** The index of the channel a payload error names (its `field`, e.g. "channels.1"), or null. */
function channelIndex(field: string | null | undefined): number | null {
  const found = /channels\D*(\d+)/.exec(field ?? "");
  return found ? Number(found[1]) : null;
}

function RuleEditor({ rule, options, onSaved, onCancel }: {
  rule: Rule | null; options: FilterOptionsQuery | null; onSaved: (rule: Rule, secret: string | null) => void; onCancel: () => void;
}) {
  const [d, setDraft] = useState<Draft>(() => draftOf(rule));
  const [error, setError] = useState<string | null>(null);
  const [channelErrors, setChannelErrors] = useState<Record<number, string>>({});
  const [touched, setTouched] = useState<Set<number>>(new Set());
  const [busy, setBusy] = useState(false);
  const set = (patch: Partial<Draft>) => setDraft({ ...d, ...patch });
  const setChannel = (i: number, value: string) => {
    set({ channels: d.channels.map((c, j) => (j === i ? value : c)) });
    setChannelErrors((e) => { const { [i]: _, ...rest } = e; return rest; });
  };
  const problems = d.channels.map(channelProblem);
  const system = d.systemEvents.length > 0;

  async function save(e: Event) {
    e.preventDefault();
    setTouched(new Set(d.channels.map((_, i) => i)));
    if (problems.some(Boolean) || !d.name.trim()) return;
    setBusy(true);
    try {
      const input = inputOf(d);
      let saved: Rule | null | undefined;
      let secret: string | null = null;
      let errors: { code: string; message: string; field?: string | null }[];
      if (rule) {
        const r = await request<UpdateAlertRuleMutation, UpdateAlertRuleMutationVariables>(UPDATE_ALERT_RULE, { id: rule.id, input });
        ({ alertRule: saved, errors } = r.updateAlertRule);
      } else {
        const r = await request<CreateAlertRuleMutation, CreateAlertRuleMutationVariables>(CREATE_ALERT_RULE, { input });
        ({ alertRule: saved, errors, webhookSecret: secret = null } = r.createAlertRule);
      }
      const perChannel: Record<number, string> = {};
      const rest = errors.filter((x) => {
        const i = channelIndex(x.field);
        if (i == null || i >= d.channels.length) return true;
        perChannel[i] = `${x.message} (${x.code})`;
        return false;
      });
      setChannelErrors(perChannel);
      setError(payloadErrors(rest) ?? (Object.keys(perChannel).length ? t("fixChannels") : null));
      if (!errors.length && saved) onSaved(saved, secret);
    } catch (err) {
      setError(err instanceof ApiError && err.code === "FORBIDDEN" ? t("alertsAdminOnly") : errorText(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form class="rule-editor" onSubmit={save} aria-label={rule ? `${t("edit")}: ${rule.name}` : t("newRule")} noValidate>
      <div class="rule-settings">
        <label>{t("name")}<input name="ruleName" required value={d.name} onInput={(e) => set({ name: e.currentTarget.value })} /></label>
        <label class="check"><input type="checkbox" name="enabled" checked={d.enabled} onChange={(e) => set({ enabled: e.currentTarget.checked })} />{t("ruleEnabled")}</label>
        <label>{t("mode")}
          <select name="mode" value={d.mode} onChange={(e) => set({ mode: e.currentTarget.value as AlertMode })}>
            {MODES.map((m) => <option value={m}>{modeName(m)}</option>)}
          </select>
        </label>
        {d.mode === "DIGEST" && (
          <label>{t("digestMinutes")}<input name="digestMinutes" type="number" min={1} max={10080} required value={d.digestMinutes} onInput={(e) => set({ digestMinutes: e.currentTarget.value })} /></label>
        )}
        {d.mode === "THRESHOLD" && (
          <>
            <label>{t("thresholdCount")}<input name="thresholdCount" type="number" min={1} required value={d.thresholdCount} onInput={(e) => set({ thresholdCount: e.currentTarget.value })} /></label>
            <label>{t("thresholdMinutes")}<input name="thresholdMinutes" type="number" min={1} max={10080} required value={d.thresholdMinutes} onInput={(e) => set({ thresholdMinutes: e.currentTarget.value })} /></label>
          </>
        )}
        <label>{t("mutedUntilLabel")}<input name="mutedUntil" type="datetime-local" value={d.mutedUntil} onInput={(e) => set({ mutedUntil: e.currentTarget.value })} /></label>
        <label>{t("messageLanguage")}
          <select name="language" value={d.language} onChange={(e) => set({ language: e.currentTarget.value as AlertLanguage })}>
            <option value="RU">Русский</option><option value="EN">English</option>
          </select>
        </label>
      </div>
      <p class="muted">{t(`modeHelp${d.mode}` as const)}</p>

      <fieldset class="channels">
        <legend>{t("channels")}</legend>
        <p class="hint">{t("channelHelp")}</p>
        <ol>
          {d.channels.map((c, i) => {
            const problem = touched.has(i) && problems[i] ? t(problems[i]!) : channelErrors[i] ?? null;
            const id = `channel-${i}`;
            return (
              <li key={i} data-channel={i}>
                <label for={id} class="visually-hidden">{fill("channelN", { n: String(i + 1) })}</label>
                <input id={id} name="channel" value={c} spellcheck={false} autocomplete="off" placeholder="https://…  mailtos://…  tgram://…"
                  aria-invalid={problem ? "true" : undefined} aria-describedby={problem ? `${id}-error` : `${id}-kind`}
                  onInput={(e) => setChannel(i, e.currentTarget.value)} onBlur={() => setTouched((s) => new Set(s).add(i))} />
                <span id={`${id}-kind`} class="channel-kind">{channelKind(c)}</span>
                {d.channels.length > 1 && (
                  <button type="button" class="secondary" aria-label={`${t("remove")}: ${fill("channelN", { n: String(i + 1) })}`}
                    onClick={() => { set({ channels: d.channels.filter((_, j) => j !== i) }); setChannelErrors({}); setTouched(new Set()); }}>×</button>
                )}
                {problem && <p id={`${id}-error`} class="error field-error">{problem}</p>}
              </li>
            );
          })}
        </ol>
        {d.channels.length < MAX_CHANNELS && (
          <button type="button" class="secondary" onClick={() => set({ channels: [...d.channels, ""] })}>{t("addChannel")}</button>
        )}
      </fieldset>

      <fieldset class="system-events">
        <legend>{t("systemEvents")}</legend>
        <p class="hint">{t("systemEventsHelp")}</p>
        {EVENTS.map((ev) => (
          <label class="check">
            <input type="checkbox" name="systemEvents" value={ev} checked={d.systemEvents.includes(ev)}
              onChange={(e) => set({ systemEvents: e.currentTarget.checked ? [...d.systemEvents, ev] : d.systemEvents.filter((x) => x !== ev) })} />
            {eventName(ev)}
          </label>
        ))}
      </fieldset>

      {!system && (
        <fieldset class="filters rule-filter">
          <legend>{t("whichComments")}</legend>
          <FilterFields filter={d.filter} onChange={(patch) => set({ filter: { ...d.filter, ...patch } })} options={options} omit={["matched"]} idPrefix="rule" />
        </fieldset>
      )}
      <ErrorLine error={error} />
      <div class="filter-buttons">
        <button type="submit" disabled={busy}>{rule ? t("save") : t("createRule")}</button>
        <button type="button" class="secondary" onClick={onCancel}>{t("cancel")}</button>
      </div>
    </form>
  );
}

function TestResults({ results }: { results: TestResult[] }) {
  return (
    <ul class="test-results" data-testid="test-results">
      {results.map((r) => (
        <li class={r.ok ? "ok" : "fail"} data-ok={String(r.ok)}>
          <span class="badge">{r.ok ? t("testAccepted") : t("testRefused")}</span> <code>{r.channel}</code> — {r.detail}
        </li>
      ))}
    </ul>
  );
}

function Rules({ admin, options, onChanged }: { admin: boolean; options: FilterOptionsQuery | null; onChanged: (rules: Rule[]) => void }) {
  const [rules, setRules] = useState<Rule[] | null>(null);
  const [editing, setEditing] = useState<Rule | "new" | null>(null);
  const [secret, setSecret] = useState<{ rule: string; value: string } | null>(null);
  const [tests, setTests] = useState<Record<string, TestResult[] | "sending">>({});
  const [error, setError] = useState<string | null>(null);
  const load = () =>
    request<AlertRulesQuery>(ALERT_RULES).then((d) => { setRules(d.alertRules); onChanged(d.alertRules); }).catch((e) => setError(errorText(e)));
  useEffect(() => { load(); }, []);

  async function sendTest(rule: Rule) {
    setTests((all) => ({ ...all, [rule.id]: "sending" }));
    try {
      const d = await request<TestAlertRuleMutation>(TEST_ALERT_RULE, { id: rule.id });
      setError(payloadErrors(d.testAlertRule.errors));
      setTests((all) => ({ ...all, [rule.id]: d.testAlertRule.results }));
    } catch (e) {
      setError(errorText(e));
      setTests(({ [rule.id]: _, ...rest }) => rest);
    }
  }
  async function remove(rule: Rule) {
    if (!confirm(`${rule.name}: ${t("confirmRemoveRule")}`)) return;
    try {
      const d = await request<RemoveAlertRuleMutation>(REMOVE_ALERT_RULE, { id: rule.id });
      setError(payloadErrors(d.removeAlertRule.errors));
      load();
    } catch (e) {
      setError(errorText(e));
    }
  }
  async function change(rule: Rule, input: AlertRuleInput) {
    try {
      const d = await request<UpdateAlertRuleMutation, UpdateAlertRuleMutationVariables>(UPDATE_ALERT_RULE, { id: rule.id, input });
      setError(payloadErrors(d.updateAlertRule.errors));
      load();
    } catch (e) {
      setError(errorText(e));
    }
  }

  const showChannels = admin || Boolean(rules?.some((r) => r.channels.length)); // operators see them too, viewers never
  const columns = 5 + (showChannels ? 1 : 0) + (admin ? 1 : 0);
  return (
    <Panel title={t("alertRules")} actions={admin && !editing && <button type="button" onClick={() => { setEditing("new"); setSecret(null); }}>{t("newRule")}</button>}>
      {!admin && <p class="muted" data-testid="alerts-read-only">{t("alertsAdminOnly")}</p>}
      {secret && (
        <div class="secret" role="status">
          <p>{fill("webhookSecretOnce", { rule: secret.rule })}</p>
          <code data-testid="webhook-secret">{secret.value}</code>{" "}
          <button type="button" class="secondary" onClick={() => setSecret(null)}>{t("hide")}</button>
        </div>
      )}
      {editing && (
        <RuleEditor rule={editing === "new" ? null : editing} options={options} onCancel={() => setEditing(null)}
          onSaved={(rule, value) => { setEditing(null); if (value) setSecret({ rule: rule.name, value }); load(); }} />
      )}
      <ErrorLine error={error} />
      {rules && rules.length === 0 && <p class="muted pad">{t("noRules")}</p>}
      {rules && rules.length > 0 && (
        <table class="rules">
          <thead>
            <tr>
              <th scope="col">#</th><th scope="col">{t("name")}</th><th scope="col">{t("mode")}</th><th scope="col">{t("whichComments")}</th>
              {showChannels && <th scope="col">{t("channels")}</th>}
              <th scope="col">{t("state")}</th>{admin && <th scope="col">{t("actions")}</th>}
            </tr>
          </thead>
          <tbody>
            {rules.map((r) => {
              const test = tests[r.id];
              return (
                <>
                  <tr data-alert-rule={r.name}>
                    <td>{displayId(r.id)}</td>
                    <td>{r.name}</td>
                    <td>{modeText(r)}</td>
                    <td>{r.systemEvents.length ? r.systemEvents.map(eventName).join(", ") : ruleFilterText(r.filter, options)}</td>
                    {showChannels && <td class="channel-list">{r.channels.map((c) => <div><code>{c}</code></div>)}</td>}
                    <td>
                      <span class={`badge ${r.enabled ? "state-succeeded" : "state-cancelled"}`}>{r.enabled ? t("ruleOn") : t("ruleOff")}</span>
                      {muted(r) && <span class="muted" data-testid="muted-until"> {fill("mutedUntil", { when: fmtDate(r.mutedUntil) })}</span>}
                    </td>
                    {admin && (
                      <td class="actions">
                        <button type="button" disabled={test === "sending"} onClick={() => sendTest(r)}>{t("sendTest")}</button>
                        <button type="button" class="secondary" onClick={() => { setEditing(r); setSecret(null); }}>{t("edit")}</button>
                        <button type="button" class="secondary" onClick={() => change(r, { enabled: !r.enabled })}>{r.enabled ? t("disable") : t("enable")}</button>
                        {muted(r) ? (
                          <button type="button" class="secondary" onClick={() => change(r, { mutedUntil: null })}>{t("unmute")}</button>
                        ) : (
                          <button type="button" class="secondary" onClick={() => change(r, { mutedUntil: new Date(Date.now() + 3_600_000).toISOString() })}>{t("muteHour")}</button>
                        )}
                        <button type="button" class="secondary" onClick={() => remove(r)}>{t("remove")}</button>
                      </td>
                    )}
                  </tr>
                  {test && (
                    <tr class="test-row" data-test-of={r.name}>
                      <td colSpan={columns}>{test === "sending" ? <span class="muted">{t("sending")}</span> : <TestResults results={test} />}</td>
                    </tr>
                  )}
                </>
              );
            })}
          </tbody>
        </table>
      )}
    </Panel>
  );
}

function eventText(event: unknown): string {
  if (!event || typeof event !== "object") return "";
  const e = event as Record<string, unknown>;
  const kind = typeof e.event === "string" ? e.event : typeof e.kind === "string" ? e.kind : "";
  return (EVENTS as string[]).includes(kind) ? eventName(kind as SystemEvent) : JSON.stringify(event);
}

function Deliveries({ rules }: { rules: Rule[] }) {
  const [state, setState] = useState<AlertDeliveryState | "">("");
  const [ruleId, setRuleId] = useState("");
  const [rows, setRows] = useState<Delivery[]>([]);
  const [total, setTotal] = useState<number | null>(null);
  const [cursor, setCursor] = useState<string | null>(null);
  const [more, setMore] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const filter = { states: state ? [state] : null, ruleIds: ruleId ? [ruleId] : null };
  const channels = rows.some((x) => x.channel); // viewers are given none

  const latest = useRef(0); // only the last load started applies (a poll in flight loses to "Load more")
  const loading = useRef(0); // loads in flight: a poll waits for them (it would undo a "Load more")
  async function load(after: string | null, size = PAGE) {
    const mine = ++latest.current;
    loading.current++;
    try {
      const d = await request<AlertDeliveriesQuery, AlertDeliveriesQueryVariables>(ALERT_DELIVERIES, { filter, first: size, after });
      if (mine !== latest.current) return;
      const page = d.alertDeliveries.edges.map((e) => e.node);
      setRows((old) => (after ? [...old, ...page] : page));
      setTotal(d.alertDeliveries.totalCount);
      setCursor(d.alertDeliveries.pageInfo.endCursor ?? null);
      setMore(d.alertDeliveries.pageInfo.hasNextPage);
      setError(null);
    } catch (e) {
      if (mine === latest.current) setError(errorText(e));
    } finally {
      loading.current--;
    }
  }
  // The first page now; then every few seconds the rows shown read again (up to the API's 100
  // a page; further pages an operator loaded stay as they are).
  const shown = useRef(0);
  shown.current = rows.length;
  useEffect(() => {
    load(null);
    const timer = setInterval(() => {
      if (!document.hidden && loading.current === 0 && shown.current <= 100) load(null, Math.min(100, Math.max(PAGE, shown.current)));
    }, POLL_MS);
    return () => clearInterval(timer);
  }, [state, ruleId]);

  return (
    <Panel title={t("deliveries")} actions={<button type="button" class="secondary" onClick={() => load(null)}>{t("refresh")}</button>}>
      <form class="filters deliveries-filter" aria-label={t("deliveries")} onSubmit={(e) => e.preventDefault()}>
        <label>{t("state")}
          <select name="deliveryState" value={state} onChange={(e) => setState(e.currentTarget.value as AlertDeliveryState | "")}>
            <option value="">{t("any")}</option>
            {STATES.map((s) => <option value={s}>{deliveryStateName(s)}</option>)}
          </select>
        </label>
        <label>{t("rule")}
          <select name="deliveryRule" value={ruleId} onChange={(e) => setRuleId(e.currentTarget.value)}>
            <option value="">{t("any")}</option>
            {rules.map((r) => <option value={r.id}>{r.name}</option>)}
          </select>
        </label>
        <span aria-live="polite" data-testid="deliveries-count" data-total={total ?? undefined}>{fmtNum(rows.length)} {t("of")} {fmtNum(total)}</span>
      </form>
      <ErrorLine error={error} />
      {rows.length === 0 && total === 0 && <p class="muted pad">{t("noDeliveries")}</p>}
      {rows.length > 0 && (
        <table class="deliveries">
          <thead>
            <tr>
              <th scope="col">{t("created")}</th><th scope="col">{t("rule")}</th><th scope="col">{t("whatWasSent")}</th>
              {channels && <th scope="col">{t("channel")}</th>}<th scope="col">{t("state")}</th><th scope="col">{t("attempts")}</th>
              <th scope="col">{t("sentAt")}</th><th scope="col">{t("lastError")}</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((x) => (
              <tr data-delivery={x.id} data-state={x.state}>
                <td>{fmtDate(x.createdAt)}</td>
                <td>{x.rule?.name ?? "—"}</td>
                <td class="delivery-what">
                  {x.comment ? (
                    <>
                      <span class="muted">{x.comment.author?.name ?? x.comment.group?.name}: </span>
                      <a href={x.comment.url} target="_blank" rel="noopener noreferrer">{x.comment.text.slice(0, 120) || "…"}</a>
                    </>
                  ) : eventText(x.event) || (x.messageId ? <code>{x.messageId}</code> : "—")}
                </td>
                {channels && <td><code>{x.channel}</code></td>}
                <td>
                  <span class={`badge delivery-${x.state.toLowerCase()}`} data-state={x.state}>{deliveryStateName(x.state)}</span>
                  {x.state === "PENDING" && x.nextAttemptAt && <div class="muted">{fill("nextAttempt", { when: fmtDate(x.nextAttemptAt) })}</div>}
                </td>
                <td>{fmtNum(x.attempts)}</td>
                <td>{fmtDate(x.sentAt)}</td>
                <td class="error-text">{x.lastError ?? ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {more && <button type="button" class="secondary" onClick={() => load(cursor)}>{t("loadMore")}</button>}
    </Panel>
  );
}

export function Alerts() {
  const [admin, setAdmin] = useState<boolean | null>(null);
  const [options, setOptions] = useState<FilterOptionsQuery | null>(null);
  const [rules, setRules] = useState<Rule[]>([]);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    request(ADMIN_PROBE).then(() => setAdmin(true)).catch((e) => {
      if (e instanceof ApiError && e.code === "FORBIDDEN") setAdmin(false);
      else { setAdmin(false); setError(errorText(e)); }
    });
    request<FilterOptionsQuery>(FILTER_OPTIONS).then(setOptions).catch((e) => setError(errorText(e)));
  }, []);
  if (admin === null) return <ErrorLine error={error} />;
  return (
    <div class="alerts">
      <ErrorLine error={error} />
      <Rules admin={admin} options={options} onChanged={setRules} />
      <Deliveries rules={rules} />
    </div>
  );
}
