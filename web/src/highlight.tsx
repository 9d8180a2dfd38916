import type { CommentFieldsFragment } from "./generated/graphql";

type Match = CommentFieldsFragment["matches"][number];
/** Where a rule-language query's terms matched (`Comment.highlights`). */
type QueryMatch = { start: number; end: number; term: string };

/** The text with its matches in <mark>: the query's terms when the Review filter has a query
 * (`highlights`), else the keywords'. Offsets are code points (the service counts Python
 * characters), so the text is split by code point, not UTF-16 unit. */
export function Highlighted({ text, matches, highlights }: { text: string; matches: Match[]; highlights?: QueryMatch[] | null }) {
  if (highlights) {
    return <Marked text={text} ranges={highlights.map((h) => ({ start: h.start, end: h.end, title: h.term }))} />;
  }
  return <Marked text={text} ranges={matches.map((m) => ({ start: m.start, end: m.end, title: m.keyword?.word ?? "" }))} />;
}

function Marked({ text, ranges: matches }: { text: string; ranges: { start: number; end: number; title: string }[] }) {
  if (!matches.length) return <>{text}</>;
  const chars = Array.from(text);
  const parts: preact.ComponentChildren[] = [];
  let at = 0;
  for (const m of [...matches].sort((a, b) => a.start - b.start)) {
    if (m.start < at) continue; // overlapping matches: the first wins
    if (m.start > at) parts.push(chars.slice(at, m.start).join(""));
    parts.push(<mark title={m.title}>{chars.slice(m.start, m.end).join("")}</mark>);
    at = m.end;
  }
  if (at < chars.length) parts.push(chars.slice(at).join(""));
  return <>{parts}</>;
}
