import { useEffect, useState } from "preact/hooks";
import { ApiError, request } from "../api";
import { fmtDate, fmtNum, t } from "../i18n";
import { VK_TOKENS } from "../ops";
import type { VkTokensQuery } from "../generated/graphql";
import { ErrorLine, Panel, errorText } from "../shared";

export function Admin() {
  const [tokens, setTokens] = useState<VkTokensQuery["vkTokens"] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    request<VkTokensQuery>(VK_TOKENS)
      .then((d) => setTokens(d.vkTokens))
      .catch((e) => setError(e instanceof ApiError && e.code === "FORBIDDEN" ? t("adminOnly") : errorText(e)));
  }, []);
  return (
    <div class="grid">
      <Panel title={t("vkTokens")}>
        <ErrorLine error={error} />
        <table>
          <thead><tr><th scope="col">{t("fingerprint")}</th><th scope="col">{t("state")}</th><th scope="col">{t("parkedUntil")}</th><th scope="col">{t("reason")}</th><th scope="col">{t("requests")}</th></tr></thead>
          <tbody>{tokens?.map((v) => <tr><td><code>{v.fingerprint}</code></td><td>{v.state}</td><td>{fmtDate(v.parkedUntil)}</td><td>{v.reason ?? ""}</td><td>{fmtNum(v.requests)}</td></tr>)}</tbody>
        </table>
        {tokens?.length === 0 && <p class="muted">{t("none")}</p>}
      </Panel>
      <Panel title="API"><p class="muted">{t("apiTokensCli")}</p></Panel>
    </div>
  );
}
