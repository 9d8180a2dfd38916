// The comment filter's controls: communities, keywords, text, author, dates and the yes/no
// conditions. Review edits its filter with them, and the Alerts screen a rule's filter: the
// same conditions the API's CommentFilter has, read the same way.
import { t } from "./i18n";
import type { CommentFilter, FilterOptionsQuery } from "./generated/graphql";
import { MultiPick } from "./shared";

const triState = (v: boolean | null | undefined) => (v == null ? "" : v ? "yes" : "no");
const fromTri = (s: string) => (s === "" ? null : s === "yes");

export const YES_NO_FIELDS = [
  ["matchedOnly", "matched"], ["viewed", "viewed"], ["archived", "archived"], ["deletedFilter", "deleted"], ["editedFilter", "edited"],
] as const;
export type YesNoField = (typeof YES_NO_FIELDS)[number][1];

export function FilterFields({ filter: f, onChange: set, options, omit = [] }: {
  filter: CommentFilter;
  onChange: (patch: Partial<CommentFilter>) => void;
  options: FilterOptionsQuery | null;
  omit?: readonly YesNoField[]; // conditions a screen has no use for (an alert rule's comments are matched ones)
}) {
  return (
    <>
      <MultiPick name="groupIds" label={t("community")} value={(f.groupIds ?? []).map(String)} onChange={(ids) => set({ groupIds: ids })}
        options={options?.groups.edges.map(({ node }) => ({ id: node.id, label: node.name })) ?? []} />
      <MultiPick name="keywordIds" label={t("keyword")} value={(f.keywordIds ?? []).map(String)} onChange={(ids) => set({ keywordIds: ids })}
        options={options?.keywords.edges.map(({ node }) => ({ id: node.id, label: node.word })) ?? []} />
      <label>{t("text")}<input name="text" type="search" value={f.text ?? ""} onInput={(e) => set({ text: e.currentTarget.value })} /></label>
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
