import { useEffect, useRef, useState } from "preact/hooks";
import { connection, request, subscribe, type ApiError } from "../api";
import { Highlighted } from "../highlight";
import { fmtDate, t } from "../i18n";
import { COMMENT_MATCHED, FILTER_OPTIONS } from "../ops";
import { cleanFilter, setReview, review } from "../reviewFilter";
import type { CommentFieldsFragment, CommentFilter, CommentMatchedSubscription, FilterOptionsQuery } from "../generated/graphql";
import { ErrorLine, MultiPick, errorText } from "../shared";
import { vkLink } from "./Review";

type Comment = CommentFieldsFragment;
const KEEP = 200; // newest first; older ones are in Review
const FLUSH_MS = 250; // a parse can match hundreds a second: render in batches, not per event
const APPLY_MS = 500; // typing in the filter resubscribes once the operator pauses
// The server ends a feed it cannot keep whole (SERVICE_UNAVAILABLE: "subscribe again") or drops
// a client that falls behind. Subscribe again after 1 s, 2 s, 4 s … at most 30 s, with jitter so
// that every console does not come back at once; a feed that ran a while starts over at 1 s.
const RETRY_FIRST_MS = 1_000;
const RETRY_MAX_MS = 30_000;
const RAN_WELL_MS = 30_000;
const FILTER_KEY = "vkcp.live";

type LiveFilter = Pick<CommentFilter, "groupIds" | "keywordIds" | "text" | "authorIds">;
type Feed = { state: "live" } | { state: "ended"; error: ApiError | null; retryAt: number };

function savedFilter(): LiveFilter {
  try {
    return JSON.parse(sessionStorage.getItem(FILTER_KEY) ?? "{}") as LiveFilter;
  } catch {
    return {}; // a malformed saved filter: watch everything
  }
}

export function retryDelay(attempt: number): number {
  const base = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** attempt);
  return Math.round(base * (0.75 + Math.random() * 0.5));
}

function LiveFilters({ options, value, onChange }: { options: FilterOptionsQuery | null; value: LiveFilter; onChange: (f: LiveFilter) => void }) {
  const set = (patch: Partial<LiveFilter>) => onChange({ ...value, ...patch });
  return (
    <form class="filters live-filters" aria-label={t("liveFilter")} onSubmit={(e) => e.preventDefault()}>
      <MultiPick name="groupIds" label={t("community")} value={(value.groupIds ?? []).map(String)} onChange={(ids) => set({ groupIds: ids })}
        options={options?.groups.edges.map(({ node }) => ({ id: node.id, label: node.name })) ?? []} />
      <MultiPick name="keywordIds" label={t("keyword")} value={(value.keywordIds ?? []).map(String)} onChange={(ids) => set({ keywordIds: ids })}
        options={options?.keywords.edges.map(({ node }) => ({ id: node.id, label: node.word })) ?? []} />
      <label>{t("text")}<input name="text" type="search" value={value.text ?? ""} onInput={(e) => set({ text: e.currentTarget.value })} /></label>
      <label>{t("author")}<input name="author" inputMode="numeric" value={value.authorIds?.join(",") ?? ""}
        onInput={(e) => set({ authorIds: e.currentTarget.value.split(/[ ,]+/).filter(Boolean).map(Number).filter(Number.isFinite) })} /></label>
      <div class="filter-buttons">
        <button type="button" class="secondary" onClick={() => onChange({})}>{t("clear")}</button>
      </div>
    </form>
  );
}

function Status({ feed, now, onRetry }: { feed: Feed; now: number; onRetry: () => void }) {
  if (feed.state === "ended") {
    const seconds = Math.max(0, Math.ceil((feed.retryAt - now) / 1000));
    const why = feed.error ? `${feed.error.message}${feed.error.code ? ` (${feed.error.code})` : ""}` : t("feedCompleted");
    return (
      <>
        <span class="conn conn-ended" data-state="ended">{t("connEnded")}</span>
        <span data-testid="live-ended-reason">{why}</span>
        <span class="muted">{t("resubscribeIn")} {seconds} {t("secondsShort")}</span>
        <button type="button" class="secondary" onClick={onRetry}>{t("resubscribeNow")}</button>
      </>
    );
  }
  const state = connection.value === "idle" ? "connecting" : connection.value;
  const label = state === "connected" ? t("connConnected") : state === "reconnecting" ? t("connReconnecting") : t("connConnecting");
  return <span class={`conn conn-${state}`} data-state={state}>{label}</span>;
}

export function Live() {
  const [items, setItems] = useState<Comment[]>([]);
  const [received, setReceived] = useState(0);
  const [options, setOptions] = useState<FilterOptionsQuery | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [draft, setDraft] = useState<LiveFilter>(savedFilter);
  const [applied, setApplied] = useState<LiveFilter>(() => cleanFilter(savedFilter()));
  const [feed, setFeed] = useState<Feed>({ state: "live" });
  const [round, setRound] = useState(0); // bumped to subscribe again
  const [now, setNow] = useState(Date.now());
  const attempt = useRef(0);
  const appliedKey = JSON.stringify(applied);

  useEffect(() => { request<FilterOptionsQuery>(FILTER_OPTIONS).then(setOptions).catch((e) => setError(errorText(e))); }, []);

  // The filter applies (and the feed resubscribes) once the operator stops changing it.
  useEffect(() => {
    const next = cleanFilter(draft);
    sessionStorage.setItem(FILTER_KEY, JSON.stringify(next));
    if (JSON.stringify(next) === appliedKey) return;
    const timer = setTimeout(() => setApplied(next), APPLY_MS);
    return () => clearTimeout(timer);
  }, [JSON.stringify(draft)]);

  // A new filter: a fresh list and a fresh backoff.
  useEffect(() => {
    attempt.current = 0;
    setItems([]);
    setReceived(0);
  }, [appliedKey]);

  useEffect(() => {
    let pending: Comment[] = [];
    const flush = setInterval(() => {
      if (!pending.length) return;
      const batch = pending.reverse();
      pending = [];
      setReceived((n) => n + batch.length);
      setItems((list) => {
        const ids = new Set(batch.map((c) => c.id));
        return [...batch, ...list.filter((c) => !ids.has(c.id))].slice(0, KEEP);
      });
    }, FLUSH_MS);
    let retry: ReturnType<typeof setTimeout> | undefined;
    const started = Date.now();
    setFeed({ state: "live" });
    const stop = subscribe<CommentMatchedSubscription>(
      COMMENT_MATCHED,
      { filter: Object.keys(applied).length ? applied : null },
      (d) => pending.push(d.commentMatched),
      (reason) => {
        if (Date.now() - started > RAN_WELL_MS) attempt.current = 0;
        const wait = retryDelay(attempt.current++);
        setFeed({ state: "ended", error: reason, retryAt: Date.now() + wait });
        retry = setTimeout(() => setRound((r) => r + 1), wait);
      },
    );
    return () => {
      clearInterval(flush);
      clearTimeout(retry);
      stop();
    };
  }, [appliedKey, round]);

  // The countdown to the next attempt.
  useEffect(() => {
    if (feed.state !== "ended") return;
    setNow(Date.now());
    const tick = setInterval(() => setNow(Date.now()), 500);
    return () => clearInterval(tick);
  }, [feed]);

  function openInReview() {
    setReview({ filter: { ...review.value.filter, ...applied, matched: true }, orderBy: review.value.orderBy });
    location.hash = "#/review";
  }

  const filtered = Object.keys(applied).length > 0;
  return (
    <div>
      <LiveFilters options={options} value={draft} onChange={setDraft} />
      <ErrorLine error={error} />
      <div class="live-status" role="status" data-testid="live-status">
        <Status feed={feed} now={now} onRetry={() => setRound((r) => r + 1)} />
        <span class="muted" data-testid="live-filter" data-filter={appliedKey}>{filtered ? t("liveFiltered") : t("liveAll")}</span>
        {received > 0 && <span data-testid="live-count">{t("received")}: {received}</span>}
        {filtered && <button type="button" class="secondary" onClick={openInReview}>{t("openInReview")}</button>}
        {items.length > 0 && <button type="button" class="secondary" onClick={() => { setItems([]); setReceived(0); }}>{t("clearList")}</button>}
      </div>
      <p class="muted">{t("liveHelp")}</p>
      {items.length === 0 && <p class="muted">{t("waiting")}</p>}
      <ol class="live-list">
        {items.map((c) => (
          <li class="live-item" key={c.id} data-comment-id={c.id}>
            <div class="comment-meta"><strong>{c.author?.name ?? "?"}</strong> · {c.group?.name} · {fmtDate(c.publishedAt)} · <a href={vkLink(c)} target="_blank" rel="noopener noreferrer">{t("openOnVk")}</a></div>
            <p class="comment-text-full"><Highlighted text={c.text} matches={c.matches} /></p>
          </li>
        ))}
      </ol>
    </div>
  );
}
