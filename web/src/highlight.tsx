import type { CommentFieldsFragment } from "./generated/graphql";

type Match = CommentFieldsFragment["matches"][number];

/** The text with its matches in <mark>. Offsets are code points (the service counts Python
 * characters), so the text is split by code point, not UTF-16 unit. */
export function Highlighted({ text, matches }: { text: string; matches: Match[] }) {
  if (!matches.length) return <>{text}</>;
  const chars = Array.from(text);
  const parts: preact.ComponentChildren[] = [];
  let at = 0;
  for (const m of [...matches].sort((a, b) => a.start - b.start)) {
    if (m.start < at) continue; // overlapping matches: the first wins
    if (m.start > at) parts.push(chars.slice(at, m.start).join(""));
    parts.push(<mark title={m.keyword?.word ?? ""}>{chars.slice(m.start, m.end).join("")}</mark>);
    at = m.end;
  }
  if (at < chars.length) parts.push(chars.slice(at).join(""));
  return <>{parts}</>;
}
