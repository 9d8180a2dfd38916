// The comment filter's controls: communities, keywords, the review workflow's statuses,
// assignees and tags, text, the rule language's query, author, dates and the yes/no conditions. Review edits its filter with them, and the Alerts screen a rule's filter: the
// same conditions the API's CommentFilter has, read the same way.
import { t } from "./i18n";
import type { CommentFilter, CommentStatus, FilterOptionsQuery } from "./generated/graphql";
import { QueryField } from "./queryField";
import { MultiPick } from "./shared";

export const STATUSES: CommentStatus[] = ["NEW", "IN_PROGRESS", "DONE", "IGNORED"];
export const statusName = (s: CommentStatus) => t(`status${s}` as const);
export const splitTags = (text: string) => text.split(",").map((x) => x.trim()).filter(Boolean);

const triState = (v: boolean | null | undefined) => (v == null ? "" : v ? "yes" : "no");
const fromTri = (s: string) => (s === "" ? null : s === "yes");

export const YES_NO_FIELDS = [
  ["matchedOnly", "matched"], ["viewed", "viewed"], ["archived", "archived"], ["deletedFilter", "deleted"], ["editedFilter", "edited"],
] as const;
export type YesNoField = (typeof YES_NO_FIELDS)[number][1];

export function FilterFields({ filter: f, onChange: set, options, omit = [], idPrefix = "review" }: {
  filter: CommentFilter;
  onChange: (patch: Partial<CommentFilter>) => void;
  options: FilterOptionsQuery | null;
  omit?: readonly YesNoField[]; // conditions a screen has no use for (an alert rule's comments are matched ones)
  idPrefix?: string; // ids of the controls that need one ("review-query" on Review)
}) {
  return (
    <>
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
        <label for={`${idPrefix}-query`}>{t("query")}</label>
        <QueryField id={`${idPrefix}-query`} name="query" value={f.query ?? ""} onInput={(v) => set({ query: v })} />
      </div>
      <label>{t("author")}<input name="author" inputMode="numeric" value={f.authorIds?.join(",") ?? ""} onInput={(e) => set({ authorIds: e.currentTarget.value.split(/[ ,]+/).filter(Boolean).map(Number).filter(Number.isFinite) })} /></label>
      <label>{t("since")}<input type="date" value={f.since?.slice(0, 10) ?? ""} onInput={(e) => set({ since: e.currentTarget.value ? `${e.currentTarget.value}T00:00:00Z` : null })} /></label>
      <label>{t("until")}<input type="date" value={f.until?.slice(0, 10) ?? ""} onInput={(e) => set({ until: e.currentTarget.value ? `${e.currentTarget.value}T23:59:59Z` : null })} /></label>
      {YES_NO_FIELDS.filter(([, field]) => !omit.includes(field)).map(([label, field]) => (
        <label>{t(label)}
          <select name={field} value={triState(f[field])} onChange={(e) => set({ [field]: fromTri(e.currentTarget.value) })}>
            <option value="">{t("any")}</option><option value="yes">{t("yes")}</option><option value="no">{t("no")}</option>
          </select>
        </label>
      ))}
    </>
  );
}
