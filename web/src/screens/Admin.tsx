import { useEffect, useState } from "preact/hooks";
import { ApiError, request } from "../api";
import { fill, fmtDate, fmtNum, t, tokenStateName } from "../i18n";
import { API_TOKENS, CREATE_API_TOKEN, REVOKE_API_TOKEN, VK_TOKENS } from "../ops";
import type {
  ApiRole, ApiTokensQuery, CreateApiTokenMutation, CreateApiTokenMutationVariables, RevokeApiTokenMutation, VkTokensQuery,
} from "../generated/graphql";
import { ErrorLine, Panel, displayId, errorText } from "../shared";

type ApiToken = ApiTokensQuery["apiTokens"][number];
const ROLES: ApiRole[] = ["VIEWER", "OPERATOR", "ADMIN"];
const problem = (e: unknown) => (e instanceof ApiError && e.code === "FORBIDDEN" ? t("adminOnly") : errorText(e));

function ApiTokens() {
  const [tokens, setTokens] = useState<ApiToken[] | null>(null);
  const [name, setName] = useState("");
  const [role, setRole] = useState<ApiRole>("OPERATOR");
  const [secret, setSecret] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = () => request<ApiTokensQuery>(API_TOKENS).then((d) => setTokens(d.apiTokens)).catch((e) => setError(problem(e)));
  useEffect(() => { load(); }, []);
  async function create(e: Event) {
    e.preventDefault();
    try {
      const d = await request<CreateApiTokenMutation, CreateApiTokenMutationVariables>(CREATE_API_TOKEN, { name, role });
      if (d.createApiToken.errors.length) return setError(d.createApiToken.errors.map((x) => x.message).join("; "));
      setSecret(d.createApiToken.secret);
      setName("");
      setError(null);
      load();
    } catch (err) { setError(problem(err)); }
  }
  async function revoke(token: ApiToken) {
    if (!confirm(`${token.name}: ${t("confirmRevoke")}`)) return;
    try {
      const d = await request<RevokeApiTokenMutation>(REVOKE_API_TOKEN, { id: token.id });
      setError(d.revokeApiToken.errors.map((x) => x.message).join("; ") || null);
      load();
    } catch (err) { setError(problem(err)); }
  }
  return (
    <Panel title={t("apiTokens")}>
      <form class="editor" onSubmit={create}>
        <label for="tok-name">{t("name")}</label>
        <input id="tok-name" value={name} required onInput={(e) => setName(e.currentTarget.value)} />
        <label for="tok-role">{t("role")}</label>
        <select id="tok-role" value={role} onChange={(e) => setRole(e.currentTarget.value as ApiRole)}>
          {ROLES.map((r) => <option value={r}>{r.toLowerCase()}</option>)}
        </select>
        <button type="submit">{t("createToken")}</button>
      </form>
      {secret && (
        <p class="secret" role="status">{t("secretOnce")} <code data-testid="new-secret">{secret}</code></p>
      )}
      <ErrorLine error={error} />
      <table>
        <thead><tr><th scope="col">#</th><th scope="col">{t("name")}</th><th scope="col">{t("role")}</th><th scope="col">{t("created")}</th><th scope="col">{t("lastUsed")}</th><th scope="col">{t("state")}</th><th scope="col">{t("actions")}</th></tr></thead>
        <tbody>
          {tokens?.map((tok) => (
            <tr data-api-token={tok.name}>
              <td>{displayId(tok.id)}</td><td>{tok.name}</td><td>{tok.role.toLowerCase()}</td><td>{fmtDate(tok.createdAt)}</td><td>{fmtDate(tok.lastUsedAt)}</td>
              <td>{tok.revokedAt ? `${t("revoked")} ${fmtDate(tok.revokedAt)}` : t("active")}</td>
              <td>{!tok.revokedAt && <button type="button" class="danger" onClick={() => revoke(tok)}>{t("revoke")}</button>}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Panel>
  );
}

export function Admin() {
  const [pool, setPool] = useState<VkTokensQuery["vkTokens"] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => { request<VkTokensQuery>(VK_TOKENS).then((d) => setPool(d.vkTokens)).catch((e) => setError(problem(e))); }, []);
  return (
    <div class="grid">
      <ApiTokens />
      <Panel title={t("vkTokens")}>
        <ErrorLine error={error} />
        <table>
          <thead><tr>
            <th scope="col">{t("fingerprint")}</th><th scope="col">{t("state")}</th><th scope="col">{t("parkedUntil")}</th><th scope="col">{t("reason")}</th>
            <th scope="col">{t("requests")}</th><th scope="col">{t("callsToday")}</th><th scope="col">{t("callsRemaining")}</th><th scope="col">{t("quotas")}</th>
          </tr></thead>
          <tbody>{pool?.map((v) => (
            <tr data-vk-token={v.fingerprint}>
              <td><code>{v.fingerprint}</code></td>
              <td><span class={`badge token-${v.state.toLowerCase()}`}>{tokenStateName(v.state)}</span></td>
              <td>{v.parkedUntil ? fmtDate(v.parkedUntil) : "—"}</td>
              <td>{v.reason ?? ""}</td>
              <td class="num">{fmtNum(v.requests)}</td>
              <td class="num" data-col="callsToday">{fmtNum(v.callsToday)}</td>
              <td class="num" data-col="callsRemaining">{v.callsRemaining == null ? t("noLimit") : fmtNum(v.callsRemaining)}</td>
              <td data-col="quotas">
                <ul class="quotas">
                  {v.quotas.map((q) => (
                    <li data-method={q.method}>
                      <code>{q.method}</code> {fmtNum(q.calls)}{q.limit != null ? ` / ${fmtNum(q.limit)}` : ""}
                      {q.remaining != null && <span class="muted"> ({fill("nLeft", { n: fmtNum(q.remaining) })})</span>}
                    </li>
                  ))}
                </ul>
              </td>
            </tr>
          ))}</tbody>
        </table>
        {pool?.length === 0 && <p class="muted">{t("noVkTokens")}</p>}
      </Panel>
    </div>
  );
}
