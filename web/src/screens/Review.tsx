import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { request } from "../api";
import { Highlighted } from "../highlight";
import { fill, fmtDate, fmtNum, lang, t } from "../i18n";
import { COMMENT_EVENTS, COMMENT_VERSIONS, COMMENTS, FILTER_OPTIONS, SET_COMMENT_STATE } from "../ops";
import { cleanFilter, review, setReview, type ReviewState } from "../reviewFilter";
import type {
  CommentEventsQuery, CommentEventsQueryVariables, CommentStatus,
  CommentFieldsFragment, CommentFilter, CommentsQuery, CommentsQueryVariables, CommentVersionsQuery, CommentVersionsQueryVariables, FilterOptionsQuery,
  SetCommentStateMutation, SetCommentStateMutationVariables,
} from "../generated/graphql";
import { ErrorLine, MultiPick, displayId, errorText } from "../shared";
import { memo } from "../memo";
import { QueryField } from "../queryField";

// A comment of the list; `highlights` are read when the filter has a rule-language query.
type Comment = CommentFieldsFragment & { highlights?: { start: number; end: number; term: string }[] | null };
type Version = NonNullable<CommentVersionsQuery["comment"]>["versions"][number];
const ROW = 92; // px; rows have a fixed height so only the visible ones are rendered
const PAGE = 100;
const OVERSCAN = 5; // rows rendered above and below the visible ones
const SORTS = [
  ["newest", "PUBLISHED_AT", "DESC"], ["oldest", "PUBLISHED_AT", "ASC"], ["mostLiked", "LIKES", "DESC"], ["mostMatches", "MATCHES_COUNT", "DESC"],
] as const;

type ReviewEvent = NonNullable<CommentEventsQuery["commentEvents"]>["edges"][number]["node"];
/** What setCommentState may change; omitted: unchanged. */
type Change = Omit<SetCommentStateMutationVariables, "ids">;
export const STATUSES: CommentStatus[] = ["NEW", "IN_PROGRESS", "DONE", "IGNORED"];
const statusName = (s: CommentStatus) => t(`status${s}` as const);
/** "My queue": assigned to me and not done (new or in progress). */
export const myQueue = (me: string): CommentFilter => ({ assignees: [me], statuses: ["NEW", "IN_PROGRESS"], archived: null });
const splitTags = (text: string) => text.split(",").map((x) => x.trim()).filter(Boolean);

const triState = (v: boolean | null | undefined) => (v == null ? "" : v ? "yes" : "no");
const fromTri = (s: string) => (s === "" ? null : s === "yes");

export function vkLink(c: Comment): string {
  return `https://vk.com/wall${c.ownerId}_${c.post?.vkId}?reply=${c.vkId}`;
}

// `language`: the memoized form renders its labels again when the language changes.
const Filters = memo(function Filters({ options }: { options: FilterOptionsQuery | null; language: string }) {
  const [draft, setDraft] = useState<ReviewState>(review.value);
  const f = draft.filter;
  const set = (patch: Partial<CommentFilter>) => setDraft({ ...draft, filter: { ...f, ...patch } });
  const sortKey = SORTS.find(([, field, dir]) => field === draft.orderBy.field && dir === draft.orderBy.direction)?.[0] ?? "newest";
  function apply(e: Event) {
    e.preventDefault();
    setReview({ ...draft, filter: cleanFilter(draft.filter) });
  }
  return (
    <form class="filters" onSubmit={apply} aria-label="filters">
      <MultiPick name="groupIds" label={t("community")} value={(f.groupIds ?? []).map(String)} onChange={(ids) => set({ groupIds: ids })}
        options={options?.groups.edges.map(({ node }) => ({ id: node.id, label: node.name })) ?? []} />
      <MultiPick name="keywordIds" label={t("keyword")} value={(f.keywordIds ?? []).map(String)} onChange={(ids) => set({ keywordIds: ids })}
        options={options?.keywords.edges.map(({ node }) => ({ id: node.id, label: node.word })) ?? []} />
      <MultiPick name="statuses" label={t("status")} value={f.statuses ?? []} onChange={(ids) => set({ statuses: ids as CommentStatus[] })}
        options={STATUSES.map((s) => ({ id: s, label: statusName(s) }))} />
      <MultiPick name="assignees" label={t("assignee")} value={f.assignees ?? []} onChange={(ids) => set({ assignees: ids })}
        options={(options?.assignableUsers ?? []).map((name) => ({ id: name, label: name }))} />
      <label>{t("tagsFilter")}<input name="tags" value={(f.tags ?? []).join(", ")} onInput={(e) => set({ tags: splitTags(e.currentTarget.value) })} /></label>
      <label>{t("text")}<input name="text" type="search" value={f.text ?? ""} onInput={(e) => set({ text: e.currentTarget.value })} /></label>
      <div class="query-filter">
        <label for="review-query">{t("query")}</label>
        <QueryField id="review-query" name="query" value={f.query ?? ""} onInput={(v) => set({ query: v })} />
      </div>
      <label>{t("author")}<input name="author" inputMode="numeric" value={f.authorIds?.join(",") ?? ""} onInput={(e) => set({ authorIds: e.currentTarget.value.split(/[ ,]+/).filter(Boolean).map(Number).filter(Number.isFinite) })} /></label>
      <label>{t("since")}<input type="date" value={f.since?.slice(0, 10) ?? ""} onInput={(e) => set({ since: e.currentTarget.value ? `${e.currentTarget.value}T00:00:00Z` : null })} /></label>
      <label>{t("until")}<input type="date" value={f.until?.slice(0, 10) ?? ""} onInput={(e) => set({ until: e.currentTarget.value ? `${e.currentTarget.value}T23:59:59Z` : null })} /></label>
      {([["matchedOnly", "matched"], ["viewed", "viewed"], ["archived", "archived"], ["deletedFilter", "deleted"], ["editedFilter", "edited"]] as const).map(([label, field]) => (
        <label>{t(label)}
          <select name={field} value={triState(f[field])} onChange={(e) => set({ [field]: fromTri(e.currentTarget.value) })}>
            <option value="">{t("any")}</option><option value="yes">{t("yes")}</option><option value="no">{t("no")}</option>
          </select>
        </label>
      ))}
      <label>{t("sort")}
        <select name="sort" value={sortKey} onChange={(e) => {
          const s = SORTS.find(([k]) => k === e.currentTarget.value)!;
          setDraft({ ...draft, orderBy: { field: s[1], direction: s[2] } });
        }}>
          {SORTS.map(([k]) => <option value={k}>{t(k)}</option>)}
        </select>
      </label>
      <div class="filter-buttons">
        <button type="submit">{t("apply")}</button>
        <button type="button" class="secondary" onClick={() => { const fresh = { filter: {}, orderBy: draft.orderBy }; setDraft(fresh); setReview(fresh); }}>{t("clear")}</button>
      </div>
    </form>
  );
});

type RowProps = {
  c: Comment; index: number; total: number; isCurrent: boolean; isSelected: boolean;
  onPick: (index: number) => void; onToggle: (id: string) => void;
  language: string; // a memoized row renders its badges again when the language changes
};

/** One comment of the list. Memoized and keyed by id: a step re-renders the row it leaves and
 * the row it reaches; a scroll adds and removes rows without touching the others. */
const Row = memo(function Row({ c, index, total, isCurrent, isSelected, onPick, onToggle }: RowProps) {
  return (
    <div
      role="listitem"
      aria-posinset={index + 1}
      aria-setsize={total}
      aria-current={isCurrent ? "true" : undefined}
      class={`comment-row${isCurrent ? " current" : ""}${c.viewed ? " viewed" : ""}${c.archived ? " archived" : ""}${isSelected ? " selected" : ""}`}
      style={{ transform: `translateY(${index * ROW}px)`, height: `${ROW}px` }}
      data-comment-id={c.id}
      onClick={() => onPick(index)}
    >
      <input type="checkbox" aria-label={`${t("selected")} ${displayId(c.id)}`} checked={isSelected} onClick={(e) => e.stopPropagation()} onChange={() => onToggle(c.id)} />
      <div class="comment-main">
        <div class="comment-meta">
          <strong>{c.author?.name ?? c.group?.name ?? "?"}</strong> · {c.group?.name} · {fmtDate(c.publishedAt)} · ♥ {c.likes}
          {c.parent && <span class="badge">↳ {t("inReplyTo")}</span>}
          {c.viewed && <span class="badge">{t("viewed")}</span>}
          {c.archived && <span class="badge">{t("archived")}</span>}
          {c.deleted && <span class="badge badge-deleted" data-badge="deleted">{t("deletedBadge")}</span>}
          {c.editedAt && <span class="badge badge-edited" data-badge="edited">{t("editedBadge")}</span>}
          {c.status !== "NEW" && <span class={`badge status-${c.status}`} data-badge="status">{statusName(c.status)}</span>}
          {c.assignee && <span class="badge badge-assignee" data-badge="assignee">@{c.assignee}</span>}
          {c.tags.map((tag) => <span class="badge badge-tag" data-badge="tag">#{tag}</span>)}
        </div>
        <p class="comment-text"><Highlighted text={c.text} matches={c.matches} highlights={c.highlights} /></p>
      </div>
    </div>
  );
});

/** The texts an edited comment had before, oldest first, read when it is shown (a pause first:
 * j / k held down does not ask for every comment it passes). */
function Versions({ comment }: { comment: Comment }) {
  const [versions, setVersions] = useState<Version[]>([]);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    setVersions([]);
    setError(null);
    if (!comment.editedAt) return;
    let alive = true;
    const timer = setTimeout(() => {
      request<CommentVersionsQuery, CommentVersionsQueryVariables>(COMMENT_VERSIONS, { id: comment.id })
        .then((d) => alive && setVersions(d.comment?.versions ?? []))
        .catch((e) => alive && setError(errorText(e)));
    }, 150);
    return () => { alive = false; clearTimeout(timer); };
  }, [comment.id, comment.editedAt]);
  if (!comment.editedAt) return null;
  return (
    <section class="versions" aria-label={t("earlierTexts")}>
      <h3>{t("earlierTexts")}</h3>
      <ErrorLine error={error} />
      <ol>
        {versions.map((v) => (
          <li><div class="muted">{fill("seenAt", { when: fmtDate(v.seenAt) })}</div><p class="version-text">{v.text}</p></li>
        ))}
      </ol>
    </section>
  );
}

/** Who changed what, when: read for the comment shown (after a pause, as Versions) and again
 * after every change made here (``revision``). */
function Events({ comment, revision }: { comment: Comment; revision: number }) {
  const [events, setEvents] = useState<ReviewEvent[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    setError(null);
    let alive = true;
    const timer = setTimeout(() => {
      request<CommentEventsQuery, CommentEventsQueryVariables>(COMMENT_EVENTS, { id: comment.id })
        .then((d) => alive && setEvents(d.commentEvents?.edges.map((e) => e.node) ?? []))
        .catch((e) => alive && setError(errorText(e)));
    }, 150);
    return () => { alive = false; clearTimeout(timer); };
  }, [comment.id, revision]);
  useEffect(() => setEvents(null), [comment.id]);
  const value = (field: string, v: string | null) =>
    v == null ? t("empty") : field === "status" ? statusName(v as CommentStatus) : v;
  return (
    <section class="events" aria-label={t("history")}>
      <h3>{t("history")}</h3>
      <ErrorLine error={error} />
      {events && events.length === 0 && <p class="muted">{t("noHistory")}</p>}
      <ol data-testid="comment-events">
        {(events ?? []).slice().reverse().map((e) => (
          <li data-field={e.field}>
            <span class="muted">{fmtDate(e.at)}</span>{" "}
            {fill("eventChange", { who: e.actor, field: t(e.field.toLowerCase() as "status"), from: value(e.field.toLowerCase(), e.oldValue), to: value(e.field.toLowerCase(), e.newValue) })}
          </li>
        ))}
      </ol>
    </section>
  );
}

/** The shown comment's status, assignee, tags and note, each changed at once (the note when saved). */
function Workflow({ comment, users, change, noteRef }: {
  comment: Comment; users: string[]; change: (ids: string[], patch: Change) => Promise<boolean>;
  noteRef: { current: HTMLTextAreaElement | null };
}) {
  const [note, setNote] = useState(comment.note ?? "");
  const [tag, setTag] = useState("");
  useEffect(() => setNote(comment.note ?? ""), [comment.id, comment.note]);
  const ids = [comment.id];
  return (
    <section class="workflow" aria-label={t("status")}>
      <div class="workflow-row">
        <label>{t("status")}
          <select name="detail-status" value={comment.status} onChange={(e) => change(ids, { status: e.currentTarget.value as CommentStatus })}>
            {STATUSES.map((s) => <option value={s}>{statusName(s)}</option>)}
          </select>
        </label>
        <label>{t("assignee")}
          <select name="detail-assignee" value={comment.assignee ?? ""} onChange={(e) => change(ids, { assignee: e.currentTarget.value })}>
            <option value="">{t("nobody")}</option>
            {[...new Set([...users, ...(comment.assignee ? [comment.assignee] : [])])].map((u) => <option value={u}>{u}</option>)}
          </select>
        </label>
      </div>
      <div class="tag-list" aria-label={t("tags")}>
        {comment.tags.map((x) => (
          <span class="badge badge-tag">#{x}<button type="button" class="tag-remove" aria-label={`${t("removeTag")} ${x}`} onClick={() => change(ids, { removeTags: [x] })}>×</button></span>
        ))}
        <form class="inline" onSubmit={(e) => { e.preventDefault(); const add = splitTags(tag); if (add.length) change(ids, { addTags: add }).then((ok) => ok && setTag("")); }}>
          <input name="detail-tag" aria-label={t("addTag")} placeholder={t("addTag")} value={tag} onInput={(e) => setTag(e.currentTarget.value)} />
        </form>
      </div>
      <form class="note" onSubmit={(e) => { e.preventDefault(); change(ids, { note }); }}>
        <label>{t("note")}<textarea name="detail-note" ref={noteRef} rows={2} maxLength={4000} value={note} onInput={(e) => setNote(e.currentTarget.value)} /></label>
        <button type="submit" class="secondary" disabled={note === (comment.note ?? "")}>{t("saveNote")}</button>
      </form>
    </section>
  );
}

/** The rows [first, last) to render for a scroll position: the visible ones and the overscan. */
function windowAt(scrollTop: number, height: number): { first: number; last: number } {
  const top = Math.floor(scrollTop / ROW);
  return { first: Math.max(0, top - OVERSCAN), last: top + Math.ceil(height / ROW) + 1 + OVERSCAN };
}

export function Review() {
  const state = review.value;
  const [rows, setRows] = useState<Comment[]>([]);
  const [total, setTotal] = useState<number | null>(null);
  const [cursor, setCursor] = useState<string | null>(null);
  const [more, setMore] = useState(true);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [current, setCurrent] = useState(0);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  // Only the window of rows in view is state: scrolling within it renders nothing.
  const [view, setView] = useState(() => windowAt(0, 600));
  const [options, setOptions] = useState<FilterOptionsQuery | null>(null);
  const listRef = useRef<HTMLDivElement>(null);
  const generation = useRef(0);
  const [revision, setRevision] = useState(0); // bumped by every change made here: the history reloads
  const tagRef = useRef<HTMLInputElement>(null);
  const noteRef = useRef<HTMLTextAreaElement>(null);
  const me = options?.viewer?.name ?? null;
  const meRef = useRef(me);
  meRef.current = me;

  useEffect(() => { request<FilterOptionsQuery>(FILTER_OPTIONS).then(setOptions).catch((e) => setError(errorText(e))); }, []);

  const loadPage = useCallback(async (reset: boolean) => {
    const gen = reset ? ++generation.current : generation.current;
    setLoading(true);
    try {
      const query = state.filter.query?.trim() ?? "";
      const d = await request<CommentsQuery, CommentsQueryVariables>(COMMENTS, {
        filter: cleanFilter(state.filter), orderBy: state.orderBy, first: PAGE, after: reset ? null : cursor,
        query, withQuery: query !== "",
      });
      if (gen !== generation.current) return; // the filter changed meanwhile
      const page = d.comments.edges.map((e) => e.node);
      setRows((old) => (reset ? page : [...old, ...page]));
      setTotal(d.comments.totalCount);
      setCursor(d.comments.pageInfo.endCursor ?? null);
      setMore(d.comments.pageInfo.hasNextPage);
      setError(null);
    } catch (e) {
      setError(errorText(e));
    } finally {
      if (gen === generation.current) setLoading(false);
    }
  }, [state, cursor]);

  useEffect(() => {
    setRows([]); setCurrent(0); setSelected(new Set()); setMore(true);
    listRef.current?.scrollTo(0, 0);
    loadPage(true);
  }, [state]);

  useEffect(() => {
    const el = listRef.current;
    if (!el) return;
    const observer = new ResizeObserver(() => follow(el.scrollTop));
    observer.observe(el);
    return () => observer.disconnect();
  }, []);

  function follow(scrollTop: number) {
    const next = windowAt(scrollTop, listRef.current?.clientHeight ?? 600);
    setView((old) => (old.first === next.first && old.last === next.last ? old : next));
  }
  const first = Math.min(view.first, rows.length);
  const last = Math.min(rows.length, view.last);
  useEffect(() => {
    if (more && !loading && last >= rows.length - 20 && rows.length > 0) loadPage(false);
  }, [last, rows.length, more, loading]);

  async function mark(ids: string[], patch: Change): Promise<boolean> {
    if (!ids.length) return false;
    try {
      const d = await request<SetCommentStateMutation, SetCommentStateMutationVariables>(SET_COMMENT_STATE, { ids, ...patch });
      if (d.setCommentState.errors.length) { setError(d.setCommentState.errors[0].message); return false; }
      const changed = new Map(d.setCommentState.comments.map((c) => [c.id, c]));
      setRows((list) => list.map((c) => {
        const now = changed.get(c.id);
        return now && (now.viewed !== c.viewed || now.archived !== c.archived || now.status !== c.status
          || now.assignee !== c.assignee || now.note !== c.note || now.tags.join(",") !== c.tags.join(",")) ? { ...c, ...now } : c;
      }));
      setSelected((s) => (s.size ? new Set() : s));
      setRevision((r) => r + 1);
      setError(null);
      return true;
    } catch (e) {
      setError(errorText(e));
      return false;
    }
  }
  const targets = () => (selected.size ? [...selected] : rows[current] ? [rows[current].id] : []);
  function targetsOf(): string[] {
    const { rows, selected } = latest.current;
    const row = rows[cursorRef.current];
    return selected.size ? [...selected] : row ? [row.id] : [];
  }

  function moveTo(index: number) {
    const i = Math.max(0, Math.min(latest.current.rows.length - 1, index));
    cursorRef.current = i;
    setCurrent(i);
    const el = listRef.current;
    if (el) {
      if (i * ROW < el.scrollTop) el.scrollTop = i * ROW;
      else if ((i + 1) * ROW > el.scrollTop + el.clientHeight) el.scrollTop = (i + 1) * ROW - el.clientHeight;
      follow(el.scrollTop); // the same render as the step, not one more on the scroll event
    }
  }

  // One listener for the screen's life; it reads the latest state through a ref, so keys
  // pressed faster than renders still move one row each.
  const latest = useRef({ rows, current, selected });
  latest.current = { rows, current, selected };
  const cursorRef = useRef(current);
  cursorRef.current = current;
  useEffect(() => {
    function onKey(e: KeyboardEvent) {
      const target = e.target as HTMLElement;
      if (e.ctrlKey || e.metaKey || e.altKey || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName)) return;
      const { rows, selected } = latest.current;
      const row = rows[cursorRef.current];
      if (e.key === "j") moveTo(cursorRef.current + 1);
      else if (e.key === "k") moveTo(cursorRef.current - 1);
      else if (e.key === "v" && row) mark(targetsOf(), { viewed: !(selected.size ? false : row.viewed) });
      else if (e.key === "a" && row) mark(targetsOf(), { archived: !(selected.size ? false : row.archived) });
      else if (e.key === "x" && row) toggle(row.id);
      else if (["1", "2", "3", "4"].includes(e.key) && row) mark(targetsOf(), { status: STATUSES[Number(e.key) - 1] });
      else if (e.key === "m" && row && meRef.current) mark(targetsOf(), { assignee: meRef.current });
      else if (e.key === "t" && row) tagRef.current?.focus();
      else if (e.key === "n" && row) noteRef.current?.focus();
      else return;
      e.preventDefault();
    }
    addEventListener("keydown", onKey);
    return () => removeEventListener("keydown", onKey);
  }, []);

  // Stable callbacks, so the memoized rows see the same props from one step to the next.
  const toggle = useCallback((id: string) => {
    setSelected((s) => {
      const next = new Set(s);
      if (next.has(id)) next.delete(id); else next.add(id);
      return next;
    });
  }, []);
  const pick = useCallback((index: number) => { cursorRef.current = index; setCurrent(index); }, []);

  const focused = rows[current];
  return (
    <div class="review">
      <Filters options={options} language={lang.value} />
      <div class="review-bar">
        <span aria-live="polite" data-testid="review-count">{fmtNum(rows.length)} {t("loaded")} {t("of")} {fmtNum(total)}</span>
        {selected.size > 0 && <span>{selected.size} {t("selected")}</span>}
        <button type="button" onClick={() => mark(targets(), { viewed: true })}>{t("markViewed")}</button>
        <button type="button" class="secondary" onClick={() => mark(targets(), { viewed: false })}>{t("unmark")}</button>
        <button type="button" class="secondary" onClick={() => mark(targets(), { archived: true })}>{t("markArchived")}</button>
        <select name="bulk-status" aria-label={t("setStatus")} value="" onChange={(e) => { const v = e.currentTarget.value as CommentStatus; e.currentTarget.value = ""; if (v) mark(targets(), { status: v }); }}>
          <option value="">{t("setStatus")}</option>
          {STATUSES.map((s) => <option value={s}>{statusName(s)}</option>)}
        </select>
        <select name="bulk-assignee" aria-label={t("assignTo")} value="-" onChange={(e) => { const v = e.currentTarget.value; e.currentTarget.value = "-"; if (v !== "-") mark(targets(), { assignee: v }); }}>
          <option value="-">{t("assignTo")}</option>
          <option value="">{t("unassign")}</option>
          {(options?.assignableUsers ?? []).map((u) => <option value={u}>{u}</option>)}
        </select>
        <form class="inline" onSubmit={(e) => {
          e.preventDefault();
          const input = tagRef.current;
          const add = splitTags(input?.value ?? "");
          if (add.length) mark(targets(), { addTags: add }).then((ok) => { if (ok && input) { input.value = ""; input.blur(); } });
        }}>
          <input name="bulk-tag" ref={tagRef} aria-label={t("addTag")} placeholder={`${t("addTag")} (t)`} title={t("tagHelp")} />
        </form>
        {me && (
          <button type="button" class="secondary" data-testid="my-queue" title={t("myQueueHelp")}
            onClick={() => setReview({ filter: myQueue(me), orderBy: state.orderBy })}>{t("myQueue")}</button>
        )}
        <span class="muted">{t("shortcuts")}; {t("workflowShortcuts")}</span>
      </div>
      <ErrorLine error={error} />
      <div class="review-body">
        <div class="comment-list" ref={listRef} onScroll={(e) => follow(e.currentTarget.scrollTop)} role="list" aria-label={t("comments")} tabIndex={0}>
          <div style={{ height: `${rows.length * ROW}px`, position: "relative" }}>
            {rows.slice(first, last).map((c, i) => (
              <Row key={c.id} c={c} index={first + i} total={rows.length} isCurrent={first + i === current}
                isSelected={selected.has(c.id)} onPick={pick} onToggle={toggle} language={lang.value} />
            ))}
          </div>
          {!loading && rows.length === 0 && <p class="muted pad">{t("none")}</p>}
        </div>
        <aside class="comment-detail" aria-label="comment">
          {focused && (
            <>
              {focused.parent && (
                <blockquote class="parent"><div class="muted">{t("inReplyTo")} {focused.parent.author?.name}</div>{focused.parent.text}</blockquote>
              )}
              <p class="detail-text"><Highlighted text={focused.text} matches={focused.matches} highlights={focused.highlights} /></p>
              {focused.deleted && <p class="history-note deleted" data-testid="deleted-at">{fill("deletedAt", { when: fmtDate(focused.deletedAt) })}</p>}
              {focused.editedAt && <p class="history-note edited" data-testid="edited-at">{fill("editedAt", { when: fmtDate(focused.editedAt) })}</p>}
              <Workflow comment={focused} users={options?.assignableUsers ?? []} change={mark} noteRef={noteRef} />
              <Versions comment={focused} />
              <Events comment={focused} revision={revision} />
              <p class="muted">{focused.matches.map((m) => m.keyword?.word).filter(Boolean).join(", ")}</p>
              <p><a href={vkLink(focused)} target="_blank" rel="noopener noreferrer">{t("openOnVk")}</a>{focused.author && <> · <a href={focused.author.url} target="_blank" rel="noopener noreferrer">{focused.author.name}</a></>}</p>
            </>
          )}
        </aside>
      </div>
    </div>
  );
}
