import { useEffect, useState } from "preact/hooks";
import { request } from "../api";
import { fmtDate, fmtNum, kindName, t, type Key } from "../i18n";
import { STATS } from "../ops";
import type { StatsQuery, StatsQueryVariables } from "../generated/graphql";
import { ErrorLine, Panel, ProgressBar, StateBadge, displayId, errorText, useLiveTasks } from "../shared";

const DAYS = 90; // the chart's window, ending today

type Day = StatsQuery["stats"]["days"][number];

/** Comments and matched comments per day: two bar series in one inline SVG. */
function DayChart({ days }: { days: Day[] }) {
  const width = 720, height = 180, pad = 24;
  const max = Math.max(1, ...days.map((d) => d.comments));
  const step = (width - pad * 2) / Math.max(1, days.length);
  const y = (v: number) => height - pad - (v / max) * (height - pad * 2);
  return (
    <svg viewBox={`0 0 ${width} ${height}`} class="chart" role="img" aria-label={t("perDay")}>
      <line x1={pad} x2={width - pad} y1={height - pad} y2={height - pad} class="axis" />
      <text x={pad} y={14} class="tick">{fmtNum(max)}</text>
      {days.map((d, i) => (
        <g>
          <title>{`${d.day}: ${d.comments} / ${d.matchedComments} / ${d.matches}`}</title>
          <rect x={pad + i * step + 1} width={Math.max(1, step - 2)} y={y(d.comments)} height={height - pad - y(d.comments)} class="bar-comments" />
          <rect x={pad + i * step + step / 4} width={Math.max(1, step / 2 - 1)} y={y(d.matchedComments)} height={height - pad - y(d.matchedComments)} class="bar-matched" />
        </g>
      ))}
      {days.length > 0 && <text x={pad} y={height - 6} class="tick">{days[0].day}</text>}
      {days.length > 1 && <text x={width - pad} y={height - 6} class="tick" text-anchor="end">{days[days.length - 1].day}</text>}
    </svg>
  );
}

export function Dashboard() {
  const [stats, setStats] = useState<StatsQuery["stats"] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const running = useLiveTasks({ states: ["QUEUED", "RUNNING"] });
  const finishedCount = running.tasks.length;
  useEffect(() => {
    const day = (msAgo: number) => new Date(Date.now() - msAgo).toISOString().slice(0, 10);
    request<StatsQuery, StatsQueryVariables>(STATS, { since: day(DAYS * 86400_000), until: day(0) }).then((d) => setStats(d.stats)).catch((e) => setError(errorText(e)));
  }, [finishedCount]); // totals move when a task finishes
  const totals: [Key, number][] = stats
    ? [["groupsN", stats.totals.groups], ["posts", stats.totals.posts], ["comments", stats.totals.comments], ["replies", stats.totals.replies],
       ["matchedComments", stats.totals.matchedComments], ["matches", stats.totals.matches], ["authors", stats.totals.authors], ["keywords", stats.totals.keywords]]
    : [];
  return (
    <div class="grid">
      <ErrorLine error={error ?? running.error} />
      <Panel title={t("totals")}>
        <dl class="totals">
          {totals.map(([k, v]) => (
            <div><dt>{t(k)}</dt><dd data-total={k}>{fmtNum(v)}</dd></div>
          ))}
        </dl>
      </Panel>
      <Panel title={t("runningTasks")}>
        {running.tasks.length === 0 ? <p class="muted">{t("noRunning")}</p> : (
          <ul class="task-list">
            {running.tasks.map((task) => (
              <li><StateBadge state={task.state} waitingUntil={task.waitingUntil} /> {kindName(task.kind)} #{displayId(task.id)} {task.group?.name ?? ""} <ProgressBar task={task} /></li>
            ))}
          </ul>
        )}
      </Panel>
      <Panel title={t("perDay")}>
        {stats && <DayChart days={stats.days} />}
        <p class="legend"><span class="swatch comments" /> {t("comments")} <span class="swatch matched" /> {t("matchedComments")}</p>
      </Panel>
      <div class="two">
        <Panel title={t("topKeywords")}>
          <table>
            <thead><tr><th scope="col">{t("word")}</th><th scope="col">{t("matches")}</th><th scope="col">{t("comments")}</th></tr></thead>
            <tbody>{stats?.topKeywords.map((k) => <tr><td>{k.word}</td><td>{fmtNum(k.matches)}</td><td>{fmtNum(k.comments)}</td></tr>)}</tbody>
          </table>
        </Panel>
        <Panel title={t("topAuthors")}>
          <table>
            <thead><tr><th scope="col">{t("authorName")}</th><th scope="col">{t("comments")}</th></tr></thead>
            <tbody>{stats?.topAuthors.map((a) => <tr><td>{a.name ?? a.vkId}</td><td>{fmtNum(a.comments)}</td></tr>)}</tbody>
          </table>
        </Panel>
      </div>
      <Panel title={t("topRules")}>
        {stats && stats.topRules.length === 0 ? <p class="muted">{t("noSavedRules")}</p> : (
          <table data-testid="top-rules">
            <thead><tr><th scope="col">{t("rule")}</th><th scope="col">{t("comments")}</th></tr></thead>
            <tbody>{stats?.topRules.map((r) => <tr data-rule={r.ruleId}><td>{r.name}</td><td>{fmtNum(r.comments)}</td></tr>)}</tbody>
          </table>
        )}
      </Panel>
      <Panel title={t("byStatus")}>
        <table data-testid="by-status">
          <thead><tr><th scope="col">{t("status")}</th><th scope="col">{t("comments")}</th></tr></thead>
          <tbody>{stats?.byStatus.map((s) => <tr data-status={s.status}><td>{t(`status${s.status}` as const)}</td><td>{fmtNum(s.comments)}</td></tr>)}</tbody>
        </table>
      </Panel>
      <Panel title={t("perCommunity")}>
        <table>
          <thead><tr><th scope="col">{t("name")}</th><th scope="col">{t("comments")}</th><th scope="col">{t("matchedComments")}</th><th scope="col">{t("lastCollected")}</th><th scope="col">{t("lastError")}</th></tr></thead>
          <tbody>
            {stats?.groups.map((g) => (
              <tr><td>{g.name}</td><td>{fmtNum(g.comments)}</td><td>{fmtNum(g.matchedComments)}</td><td>{fmtDate(g.lastCollectedAt)}</td><td class="error-cell">{g.group?.monitoring.lastError ?? ""}</td></tr>
            ))}
          </tbody>
        </table>
      </Panel>
    </div>
  );
}
