import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { getToken, onSignedOut, request, setToken, ApiError } from "./api";
import { lang, setLang, t, type Key } from "./i18n";
import { PING } from "./ops";
import { openLinkedReview } from "./reviewFilter";
import type { PingQuery } from "./generated/graphql";
import { Dashboard } from "./screens/Dashboard";
import { Communities } from "./screens/Communities";
import { Keywords } from "./screens/Keywords";
import { Review } from "./screens/Review";
import { Live } from "./screens/Live";
import { Tasks } from "./screens/Tasks";
import { Exports } from "./screens/Exports";
import { Admin } from "./screens/Admin";
import { Alerts } from "./screens/Alerts";
import "./style.css";

const SCREENS: { path: string; label: Key; view: () => preact.JSX.Element }[] = [
  { path: "dashboard", label: "dashboard", view: Dashboard },
  { path: "communities", label: "communities", view: Communities },
  { path: "keywords", label: "keywords", view: Keywords },
  { path: "review", label: "review", view: Review },
  { path: "live", label: "live", view: Live },
  { path: "tasks", label: "tasks", view: Tasks },
  { path: "exports", label: "exports", view: Exports },
  { path: "alerts", label: "alerts", view: Alerts },
  { path: "admin", label: "admin", view: Admin },
];

function currentPath(): string {
  openLinkedReview(location.hash); // an alert's link to Review with its rule's filter
  return location.hash.replace(/^#\/?/, "") || "dashboard";
}

function SignIn({ notice, onDone }: { notice: string | null; onDone: () => void }) {
  const [value, setValue] = useState("");
  const [error, setError] = useState<string | null>(notice);
  const [busy, setBusy] = useState(false);
  async function submit(e: Event) {
    e.preventDefault();
    const candidate = value.trim();
    if (!candidate) return;
    setBusy(true);
    try {
      await request<PingQuery>(PING, {}, candidate);
      setToken(candidate);
      onDone();
    } catch (err) {
      setError(err instanceof ApiError && err.code === "UNAUTHENTICATED" ? t("wrongToken") : err instanceof ApiError && err.code === "NETWORK" ? t("networkError") : String((err as Error).message));
    } finally {
      setBusy(false);
    }
  }
  return (
    <main class="signin">
      <form onSubmit={submit} class="panel">
        <h1>{t("appName")}</h1>
        <LangSwitch />
        <label for="token">{t("token")}</label>
        <input id="token" type="password" autocomplete="current-password" value={value} onInput={(e) => setValue(e.currentTarget.value)} />
        <p class="hint">{t("tokenHelp")}</p>
        {error && <p class="error" role="alert">{error}</p>}
        <button type="submit" disabled={busy}>{t("signIn")}</button>
      </form>
    </main>
  );
}

function LangSwitch() {
  return (
    <div class="lang" role="group" aria-label={t("language")}>
      {(["ru", "en"] as const).map((l) => (
        <button type="button" class={lang.value === l ? "on" : ""} aria-pressed={lang.value === l} onClick={() => setLang(l)}>
          {l.toUpperCase()}
        </button>
      ))}
    </div>
  );
}

function App() {
  const [signedIn, setSignedIn] = useState(Boolean(getToken()));
  const [notice, setNotice] = useState<string | null>(null);
  const [path, setPath] = useState(currentPath());
  useEffect(() => {
    const onHash = () => setPath(currentPath());
    addEventListener("hashchange", onHash);
    const off = onSignedOut(() => {
      setToken("");
      setNotice(t("sessionEnded"));
      setSignedIn(false);
    });
    return () => {
      removeEventListener("hashchange", onHash);
      off();
    };
  }, []);
  lang.value; // re-render on language change
  if (!signedIn) return <SignIn notice={notice} onDone={() => { setNotice(null); setSignedIn(true); }} />;
  const screen = SCREENS.find((s) => s.path === path.split("?")[0]) ?? SCREENS[0];
  const View = screen.view;
  return (
    <div class="shell">
      <nav aria-label="main">
        <div class="brand">{t("appName")}</div>
        <ul>
          {SCREENS.map((s) => (
            <li>
              <a href={`#/${s.path}`} aria-current={s === screen ? "page" : undefined}>{t(s.label)}</a>
            </li>
          ))}
          <li><a href="/graphql" target="_blank" rel="noopener">{t("graphiql")}</a></li>
        </ul>
        <LangSwitch />
        <button type="button" class="link" onClick={() => { setToken(""); setSignedIn(false); }}>{t("signOut")}</button>
      </nav>
      <main id="main">
        <h1>{t(screen.label)}</h1>
        <View key={screen.path} />
      </main>
    </div>
  );
}

render(<App />, document.getElementById("app")!);
