import { useEffect, useState } from "preact/hooks";
import { request } from "../api";
import { fmtDate, t, type Key } from "../i18n";
import { START_EXPORT } from "../ops";
import { cleanFilter, review } from "../reviewFilter";
import type { CommentFilter, CommentStatus, CsvDelimiter, ExportFormat, StartExportMutation, StartExportMutationVariables } from "../generated/graphql";
import { ErrorLine, Panel, ProgressBar, StateBadge, displayId, errorText, payloadErrors, useLiveTasks } from "../shared";
import { TaskResult } from "./Tasks";

// Russia's zones west to east, then UTC: what a Russian desk's exports are read in.
const ZONES = [
  "Europe/Kaliningrad", "Europe/Moscow", "Europe/Samara", "Asia/Yekaterinburg", "Asia/Omsk", "Asia/Novosibirsk",
  "Asia/Krasnoyarsk", "Asia/Irkutsk", "Asia/Yakutsk", "Asia/Vladivostok", "Asia/Magadan", "Asia/Kamchatka", "UTC",
];
const OTHER = "other"; // the select's choice that opens a field for any IANA name
const DELIMITERS: [CsvDelimiter, Key][] = [["COMMA", "comma"], ["SEMICOLON", "semicolon"], ["TAB", "tab"]];
const PREFS_KEY = "vkcp.export"; // remembered like the language: per browser, across sessions

type Prefs = { format: ExportFormat; zone: string; otherZone: string; delimiter: CsvDelimiter };

function browserZone(): string | null {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || null;
  } catch {
    return null;
  }
}

/** "GMT+3" for a zone now, as the browser knows it; "" when it does not know the zone. */
function offsetNow(zone: string): string {
  try {
    return new Intl.DateTimeFormat("en-GB", { timeZone: zone, timeZoneName: "shortOffset" })
      .formatToParts(new Date()).find((p) => p.type === "timeZoneName")?.value ?? "";
  } catch {
    return "";
  }
}

const FILTER_LABEL: Record<string, Key> = {
  groupIds: "communities", postIds: "posts", keywordIds: "keywords", matched: "matchedOnly", text: "text",
  authorIds: "author", since: "since", until: "until", viewed: "viewed", archived: "archived",
  deleted: "deletedFilter", edited: "editedFilter", statuses: "status", assignees: "assignee", tags: "tags",
};

/** The Review filter as an operator reads it: "Communities: 1 · Matched only: yes · Text: окошке". */
function filterText(filter: CommentFilter): string {
  const value = (k: string, v: unknown): string => {
    if (k === "statuses" && Array.isArray(v)) return v.map((x) => t(`status${x as CommentStatus}` as const)).join(", ");
    if ((k === "assignees" || k === "tags") && Array.isArray(v)) return v.join(", ");
    if (Array.isArray(v)) return v.map((x) => displayId(String(x))).join(", ");
    if (typeof v === "boolean") return t(v ? "yes" : "no");
    return k === "since" || k === "until" ? fmtDate(String(v)) : String(v);
  };
  const parts = Object.entries(filter).map(([k, v]) => `${FILTER_LABEL[k] ? t(FILTER_LABEL[k]) : k}: ${value(k, v)}`);
  return parts.join(" · ") || t("all");
}

function loadPrefs(zones: string[]): Prefs {
  const fallback: Prefs = { format: "CSV", zone: "", otherZone: "", delimiter: "COMMA" };
  try {
    const saved = { ...fallback, ...JSON.parse(localStorage.getItem(PREFS_KEY) ?? "{}") } as Prefs;
    if (!["CSV", "XLSX", "JSONL"].includes(saved.format)) saved.format = fallback.format;
    if (!DELIMITERS.some(([d]) => d === saved.delimiter)) saved.delimiter = fallback.delimiter;
    if (saved.zone && saved.zone !== OTHER && !zones.includes(saved.zone)) {
      saved.otherZone = saved.zone; // a zone this browser no longer lists: keep it as typed
      saved.zone = OTHER;
    }
    return saved;
  } catch {
    return fallback; // a malformed saved choice: start fresh
  }
}

export function Exports() {
  const own = browserZone();
  const zones = own && !ZONES.includes(own) ? [own, ...ZONES] : ZONES;
  const [prefs, setPrefs] = useState<Prefs>(() => loadPrefs(zones));
  const [error, setError] = useState<string | null>(null);
  const exportsList = useLiveTasks({ kinds: ["EXPORT"] }, 50);
  const filter = cleanFilter(review.value.filter);
  const { format, zone, otherZone, delimiter } = prefs;
  const change = (part: Partial<Prefs>) => setPrefs((p) => ({ ...p, ...part }));
  useEffect(() => localStorage.setItem(PREFS_KEY, JSON.stringify(prefs)), [prefs]);
  async function start(e: Event) {
    e.preventDefault();
    const timeZone = (zone === OTHER ? otherZone.trim() : zone) || null; // null: the server's default
    try {
      const d = await request<StartExportMutation, StartExportMutationVariables>(START_EXPORT, {
        input: { filter, format, timeZone, delimiter: format === "CSV" ? delimiter : null },
      });
      setError(payloadErrors(d.startExport.errors));
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
              <label><input type="radio" name="format" value={f} checked={format === f} onChange={() => change({ format: f })} /> {f}</label>
            ))}
          </fieldset>
          {format === "CSV" && (
            <fieldset class="inline">
              <legend>{t("delimiter")}</legend>
              {DELIMITERS.map(([d, label]) => (
                <label><input type="radio" name="delimiter" value={d} checked={delimiter === d} onChange={() => change({ delimiter: d })} /> {t(label)}</label>
              ))}
            </fieldset>
          )}
          <label for="export-zone">{t("timeZone")}</label>
          <select id="export-zone" value={zone} onChange={(e) => change({ zone: e.currentTarget.value })}>
            <option value="">{t("serverDefault")}</option>
            {zones.map((z) => {
              const offset = offsetNow(z);
              return <option value={z}>{z}{offset ? ` (${offset})` : ""}{z === own ? ` — ${t("browserZone")}` : ""}</option>;
            })}
            <option value={OTHER}>{t("otherZone")}</option>
          </select>
          {zone === OTHER && (
            <>
              <label for="export-zone-other">{t("zoneName")}</label>
              <input id="export-zone-other" value={otherZone} placeholder="Asia/Chita" autocomplete="off" spellcheck={false}
                onInput={(e) => change({ otherZone: e.currentTarget.value })} />
            </>
          )}
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
