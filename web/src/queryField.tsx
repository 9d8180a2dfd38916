import { useEffect, useState } from "preact/hooks";
import { request } from "./api";
import { fill, t } from "./i18n";
import { VALIDATE_QUERY } from "./ops";
import type { ValidateQueryQuery, ValidateQueryQueryVariables } from "./generated/graphql";

type Problem = ValidateQueryQuery["validateQuery"]["errors"][number];

/** A rule-language query input whose mistakes show as you type: each pause asks the service
 * (`validateQuery`), which says the line, the column and what it expected there. */
export function QueryField({ id, name, value, onInput, onValid }: {
  id: string; name: string; value: string; onInput: (v: string) => void; onValid?: (valid: boolean) => void;
}) {
  const [problem, setProblem] = useState<Problem | null>(null);
  useEffect(() => {
    if (!value.trim()) { setProblem(null); onValid?.(true); return; }
    let alive = true;
    const timer = setTimeout(() => {
      request<ValidateQueryQuery, ValidateQueryQueryVariables>(VALIDATE_QUERY, { query: value })
        .then((d) => {
          if (!alive) return;
          setProblem(d.validateQuery.errors[0] ?? null);
          onValid?.(d.validateQuery.valid);
        })
        .catch(() => alive && setProblem(null)); // unreachable service: the request itself will say so
    }, 250);
    return () => { alive = false; clearTimeout(timer); };
  }, [value]);
  const errorId = `${id}-error`;
  return (
    <>
      <textarea id={id} name={name} rows={2} spellcheck={false} value={value} aria-invalid={problem ? "true" : undefined}
        aria-describedby={problem ? errorId : undefined} placeholder='(кошка OR кот) корм -продам' onInput={(e) => onInput(e.currentTarget.value)} />
      {problem && (
        <p id={errorId} class="query-error error" role="status" data-line={problem.line} data-column={problem.column}>
          {fill("queryErrorAt", { line: String(problem.line), column: String(problem.column) })}: {problem.message}
          {problem.expected.length > 0 && <> — {t("expected")}: {problem.expected.join(", ")}</>}
        </p>
      )}
    </>
  );
}
