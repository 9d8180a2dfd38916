import { useEffect, useState } from "preact/hooks";
import { subscribe } from "../api";
import { Highlighted } from "../highlight";
import { fmtDate, t } from "../i18n";
import { COMMENT_MATCHED } from "../ops";
import type { CommentFieldsFragment, CommentMatchedSubscription } from "../generated/graphql";
import { vkLink } from "./Review";

type Comment = CommentFieldsFragment;
const KEEP = 200; // newest first; older ones are in Review
const FLUSH_MS = 250; // a parse can match hundreds a second: render in batches, not per event

export function Live() {
  const [items, setItems] = useState<Comment[]>([]);
  const [received, setReceived] = useState(0);
  useEffect(() => {
    let pending: Comment[] = [];
    const timer = setInterval(() => {
      if (!pending.length) return;
      const batch = pending.reverse();
      pending = [];
      setReceived((n) => n + batch.length);
      setItems((list) => {
        const ids = new Set(batch.map((c) => c.id));
        return [...batch, ...list.filter((c) => !ids.has(c.id))].slice(0, KEEP);
      });
    }, FLUSH_MS);
    const stop = subscribe<CommentMatchedSubscription>(COMMENT_MATCHED, { filter: null }, (d) => pending.push(d.commentMatched));
    return () => {
      clearInterval(timer);
      stop();
    };
  }, []);
  return (
    <div>
      <p class="muted">{t("liveHelp")} {received > 0 && <span data-testid="live-count">({received})</span>}</p>
      {items.length === 0 && <p class="muted" aria-live="polite">{t("waiting")}</p>}
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
