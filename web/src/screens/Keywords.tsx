import { useEffect, useState } from "preact/hooks";
import { request } from "../api";
import { fmtNum, t } from "../i18n";
import { ADD_KEYWORDS, CREATE_RULE, KEYWORDS, REMOVE_KEYWORD, REMOVE_RULE, RULES, START_ANALYZE, UPDATE_KEYWORD, UPDATE_RULE } from "../ops";
import { QueryField } from "../queryField";
import type {
  AddKeywordsMutation, AddKeywordsMutationVariables, KeywordFieldsFragment, KeywordInput, KeywordsQuery, KeywordsQueryVariables,
  RemoveKeywordMutation, StartAnalyzeMutation, StartAnalyzeMutationVariables, UpdateKeywordMutation, UpdateKeywordMutationVariables,
  CreateRuleMutation, CreateRuleMutationVariables, RemoveRuleMutation, RemoveRuleMutationVariables, RuleFieldsFragment, RulesQuery,
  UpdateRuleMutation, UpdateRuleMutationVariables,
} from "../generated/graphql";
import { ErrorLine, Panel, ProgressBar, StateBadge, errorText, useTaskProgress, type Task } from "../shared";

type Keyword = KeywordFieldsFragment;
type Options = { caseSensitive: boolean; wholeWord: boolean; morphology: boolean };

function OptionBoxes({ value, onChange, prefix }: { value: Options; onChange: (o: Options) => void; prefix: string }) {
  return (
    <span class="options">
      {(["caseSensitive", "wholeWord", "morphology"] as const).map((k) => (
        <label for={`${prefix}-${k}`}>
          <input id={`${prefix}-${k}`} type="checkbox" checked={value[k]} onChange={(e) => onChange({ ...value, [k]: e.currentTarget.checked })} /> {t(k)}
        </label>
      ))}
    </span>
  );
}

function KeywordRow({ kw, onChanged, onRemoved }: { kw: Keyword; onChanged: (k: Keyword) => void; onRemoved: () => void }) {
  const [editing, setEditing] = useState(false);
  const [word, setWord] = useState(kw.word);
  const [category, setCategory] = useState(kw.category ?? "");
  const [active, setActive] = useState(kw.active);
  const [opts, setOpts] = useState<Options>({ caseSensitive: kw.caseSensitive, wholeWord: kw.wholeWord, morphology: kw.morphology });
  const [error, setError] = useState<string | null>(null);
  async function save() {
    try {
      const d = await request<UpdateKeywordMutation, UpdateKeywordMutationVariables>(UPDATE_KEYWORD, {
        id: kw.id, input: { word, category: category || null, active, ...opts },
      });
      if (d.updateKeyword.errors.length) setError(d.updateKeyword.errors.map((x) => x.message).join("; "));
      else if (d.updateKeyword.keyword) { onChanged(d.updateKeyword.keyword); setEditing(false); setError(null); }
    } catch (e) { setError(errorText(e)); }
  }
  async function remove() {
    if (!confirm(`${kw.word}?`)) return;
    try {
      const d = await request<RemoveKeywordMutation>(REMOVE_KEYWORD, { id: kw.id });
      if (d.removeKeyword.errors.length) setError(d.removeKeyword.errors[0].message);
      else onRemoved();
    } catch (e) { setError(errorText(e)); }
  }
  if (editing) {
    return (
      <tr>
        <td><input aria-label={t("word")} value={word} onInput={(e) => setWord(e.currentTarget.value)} /></td>
        <td><input aria-label={t("category")} value={category} onInput={(e) => setCategory(e.currentTarget.value)} /></td>
        <td colSpan={2}>
          <label><input type="checkbox" checked={active} onChange={(e) => setActive(e.currentTarget.checked)} /> {t("active")}</label>
          <OptionBoxes value={opts} onChange={setOpts} prefix={`kw${kw.id}`} />
        </td>
        <td class="actions"><button type="button" onClick={save}>{t("save")}</button><button type="button" class="secondary" onClick={() => setEditing(false)}>{t("cancel")}</button><ErrorLine error={error} /></td>
      </tr>
    );
  }
  const flags = [kw.caseSensitive && t("caseSensitive"), kw.wholeWord && t("wholeWord"), kw.morphology && t("morphology")].filter(Boolean).join(", ");
  return (
    <tr data-keyword={kw.word}>
      <td>{kw.word}{!kw.active && <span class="badge">{t("active")}: {t("no")}</span>}</td>
      <td>{kw.category ?? ""}</td>
      <td>{flags}</td>
      <td class="num">{fmtNum(kw.matchesCount)}</td>
      <td class="actions">
        <button type="button" class="secondary" onClick={() => setEditing(true)}>{t("edit")}</button>
        <button type="button" class="danger" onClick={remove}>{t("remove")}</button>
        <ErrorLine error={error} />
      </td>
    </tr>
  );
}

type Rule = RuleFieldsFragment;

/** Saved rules: a list, and one form that saves a new rule or the one picked with "edit". */
function Rules() {
  const [rules, setRules] = useState<Rule[]>([]);
  const [editing, setEditing] = useState<Rule | null>(null);
  const [name, setName] = useState("");
  const [query, setQuery] = useState("");
  const [category, setCategory] = useState("");
  const [error, setError] = useState<string | null>(null);
  async function load() {
    try {
      const d = await request<RulesQuery>(RULES);
      setRules(d.rules.edges.map((e) => e.node));
    } catch (e) { setError(errorText(e)); }
  }
  useEffect(() => { load(); }, []);
  function pick(rule: Rule | null) {
    setEditing(rule); setName(rule?.name ?? ""); setQuery(rule?.query ?? ""); setCategory(rule?.category ?? ""); setError(null);
  }
  async function save(e: Event) {
    e.preventDefault();
    const input = { name, query, category: category || null };
    try {
      const payload = editing
        ? (await request<UpdateRuleMutation, UpdateRuleMutationVariables>(UPDATE_RULE, { id: editing.id, input })).updateRule
        : (await request<CreateRuleMutation, CreateRuleMutationVariables>(CREATE_RULE, { input })).createRule;
      if (payload.errors.length) { setError(payload.errors.map((x) => x.message).join("; ")); return; }
      pick(null);
      await load();
    } catch (err) { setError(errorText(err)); }
  }
  async function remove(rule: Rule) {
    if (!confirm(`${rule.name}?`)) return;
    try {
      const d = await request<RemoveRuleMutation, RemoveRuleMutationVariables>(REMOVE_RULE, { id: rule.id });
      if (d.removeRule.errors.length) setError(d.removeRule.errors[0].message);
      else { if (editing?.id === rule.id) pick(null); await load(); }
    } catch (err) { setError(errorText(err)); }
  }
  return (
    <Panel title={`${t("rules")} (${rules.length})`}>
      <p class="muted">{t("ruleHelp")}</p>
      <form onSubmit={save} class="stack" aria-label={t("addRule")}>
        <label for="rule-name">{t("ruleName")}</label>
        <input id="rule-name" value={name} onInput={(e) => setName(e.currentTarget.value)} />
        <label for="rule-query">{t("ruleQuery")}</label>
        <QueryField id="rule-query" name="ruleQuery" value={query} onInput={setQuery} />
        <label for="rule-category">{t("category")}</label>
        <input id="rule-category" value={category} onInput={(e) => setCategory(e.currentTarget.value)} />
        <div>
          <button type="submit">{editing ? t("save") : t("addRule")}</button>
          {editing && <button type="button" class="secondary" onClick={() => pick(null)}>{t("cancel")}</button>}
        </div>
      </form>
      <ErrorLine error={error} />
      <table>
        <thead><tr><th scope="col">{t("ruleName")}</th><th scope="col">{t("ruleQuery")}</th><th scope="col">{t("category")}</th><th scope="col">{t("matchesCount")}</th><th scope="col">{t("actions")}</th></tr></thead>
        <tbody>
          {rules.map((rule) => (
            <tr data-rule={rule.name}>
              <td>{rule.name}<div class="muted"><code>{rule.reference}</code></div></td>
              <td><code>{rule.query}</code></td>
              <td>{rule.category ?? ""}</td>
              <td class="num">{fmtNum(rule.matchesCount)}</td>
              <td class="actions">
                <button type="button" class="secondary" onClick={() => pick(rule)}>{t("edit")}</button>
                <button type="button" class="danger" onClick={() => remove(rule)}>{t("remove")}</button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </Panel>
  );
}

export function Keywords() {
  const [keywords, setKeywords] = useState<Keyword[]>([]);
  const [text, setText] = useState("");
  const [category, setCategory] = useState("");
  const [opts, setOpts] = useState<Options>({ caseSensitive: false, wholeWord: true, morphology: true });
  const [results, setResults] = useState<{ word: string; ok: boolean; text: string }[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [analyze, setAnalyze] = useState<Task | null>(null);
  const live = useTaskProgress(analyze);

  async function load() {
    try {
      const all: Keyword[] = [];
      let after: string | null = null;
      do {
        const d: KeywordsQuery = await request<KeywordsQuery, KeywordsQueryVariables>(KEYWORDS, { first: 100, after });
        all.push(...d.keywords.edges.map((e) => e.node));
        after = d.keywords.pageInfo.hasNextPage ? d.keywords.pageInfo.endCursor ?? null : null;
      } while (after);
      setKeywords(all);
    } catch (e) { setError(errorText(e)); }
  }
  useEffect(() => { load(); }, []);
  useEffect(() => { if (live && ["SUCCEEDED", "FAILED", "CANCELLED"].includes(live.state)) load(); }, [live?.state]);

  async function add(e: Event) {
    e.preventDefault();
    const words = text.split("\n").map((s) => s.trim()).filter(Boolean);
    if (!words.length) return;
    // morphology: unchecked means off; checked leaves the service's default (on for Cyrillic words)
    const input: KeywordInput[] = words.map((word) => ({
      word, category: category || null, caseSensitive: opts.caseSensitive, wholeWord: opts.wholeWord, morphology: opts.morphology ? null : false,
    }));
    try {
      const d = await request<AddKeywordsMutation, AddKeywordsMutationVariables>(ADD_KEYWORDS, { input });
      setResults(d.addKeywords.results.map((r) => ({ word: r.word, ok: !r.errors.length, text: r.errors.length ? r.errors.map((x) => x.message).join("; ") : t("added") })));
      setText(d.addKeywords.results.filter((r) => r.errors.length).map((r) => r.word).join("\n"));
      await load();
    } catch (err) { setError(errorText(err)); }
  }
  async function readFile(e: Event) {
    const file = (e.currentTarget as HTMLInputElement).files?.[0];
    if (file) setText((await file.text()).replace(/\r/g, ""));
  }
  async function reanalyze() {
    try {
      const d = await request<StartAnalyzeMutation, StartAnalyzeMutationVariables>(START_ANALYZE, { input: {} });
      if (d.startAnalyze.errors.length) setError(d.startAnalyze.errors[0].message);
      else setAnalyze(d.startAnalyze.task);
    } catch (err) { setError(errorText(err)); }
  }
  return (
    <div class="grid">
      <Panel title={t("addKeyword")}>
        <form onSubmit={add} class="stack">
          <label for="kw-words">{t("bulkImport")}</label>
          <textarea id="kw-words" rows={4} value={text} onInput={(e) => setText(e.currentTarget.value)} />
          <label for="kw-file">{t("importFile")}</label>
          <input id="kw-file" type="file" accept=".txt,.csv,text/plain" onChange={readFile} />
          <label for="kw-category">{t("category")}</label>
          <input id="kw-category" value={category} onInput={(e) => setCategory(e.currentTarget.value)} />
          <OptionBoxes value={opts} onChange={setOpts} prefix="new" />
          <button type="submit">{t("import")}</button>
        </form>
        {results.length > 0 && <ul class="line-results" aria-live="polite">{results.map((r) => <li class={r.ok ? "ok" : "fail"}><code>{r.word}</code> — {r.text}</li>)}</ul>}
      </Panel>
      <Panel title={t("reanalyze")} actions={<button type="button" onClick={reanalyze}>{t("reanalyze")}</button>}>
        <p class="muted">{t("reanalyzeHelp")}</p>
        {live && <div><StateBadge state={live.state} /> <ProgressBar task={live} /></div>}
      </Panel>
      <ErrorLine error={error} />
      <Panel title={`${t("keywords")} (${keywords.length})`}>
        <table>
          <thead><tr><th scope="col">{t("word")}</th><th scope="col">{t("category")}</th><th scope="col">{t("caseSensitive")} / {t("wholeWord")} / {t("morphology")}</th><th scope="col">{t("matchesCount")}</th><th scope="col">{t("actions")}</th></tr></thead>
          <tbody>
            {keywords.map((kw) => (
              <KeywordRow key={kw.id} kw={kw} onChanged={(k) => setKeywords((l) => l.map((x) => (x.id === k.id ? k : x)))} onRemoved={() => setKeywords((l) => l.filter((x) => x.id !== kw.id))} />
            ))}
          </tbody>
        </table>
      </Panel>
      <Rules />
    </div>
  );
}
