// The Review screen's filter, shared with Exports ("export what I am looking at") and kept for
// the browser session.
import { signal } from "@preact/signals";
import type { CommentFilter, CommentOrder } from "./generated/graphql";

export type ReviewState = { filter: CommentFilter; orderBy: CommentOrder };
const KEY = "vkcp.review";

function initial(): ReviewState {
  try {
    const saved = sessionStorage.getItem(KEY);
    if (saved) return JSON.parse(saved);
  } catch {
    /* a malformed saved filter: start fresh */
  }
  return { filter: { archived: false }, orderBy: { field: "PUBLISHED_AT", direction: "DESC" } };
}

export const review = signal<ReviewState>(initial());

export function setReview(value: ReviewState): void {
  review.value = value;
  sessionStorage.setItem(KEY, JSON.stringify(value));
}

/** The filter without empty values, as the API expects it. */
export function cleanFilter(filter: CommentFilter): CommentFilter {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(filter)) {
    if (v === null || v === undefined || v === "" || (Array.isArray(v) && v.length === 0)) continue;
    out[k] = v;
  }
  return out as CommentFilter;
}

/** A link into Review with a filter, as alert messages give them (`#/review?keywordIds=3,4&
 * groupIds=1&text=...`, row ids or global ids): becomes the Review filter, and the address
 * loses its query (the filter is kept like any other). False when the address has none. */
export function openLinkedReview(hash: string): boolean {
  const found = /^#\/?review\?(.*)$/.exec(hash);
  if (!found) return false;
  const query = new URLSearchParams(found[1]);
  const ids = (name: string, type: string) =>
    (query.get(name) ?? "").split(",").map((s) => s.trim()).filter(Boolean).map((id) => (/^\d+$/.test(id) ? btoa(`${type}:${id}`) : id));
  const filter: CommentFilter = cleanFilter({
    groupIds: ids("groupIds", "Group"), keywordIds: ids("keywordIds", "Keyword"), text: query.get("text") ?? "", matched: true,
  });
  setReview({ filter, orderBy: review.value.orderBy });
  history.replaceState(null, "", "#/review");
  return true;
}
