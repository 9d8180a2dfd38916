// GraphiQL served from the service's own assets. Signed in to the console (same origin), the
// page sends the console's token itself; otherwise the note says how to send one.
import { createRoot } from "react-dom/client";
import { GraphiQL } from "graphiql";
import { createGraphiQLFetcher } from "@graphiql/toolkit";
import "graphiql/graphiql.css";

const token = localStorage.getItem("vkcp.token");
const scheme = location.protocol === "https:" ? "wss" : "ws";
const auth = token ? { Authorization: `Bearer ${token}` } : undefined;

const fetcher = createGraphiQLFetcher({
  url: `${location.origin}/graphql`,
  subscriptionUrl: `${scheme}://${location.host}/graphql`,
  headers: auth,
  wsConnectionParams: auth,
});

const note = document.getElementById("note")!;
const ru = navigator.language.toLowerCase().startsWith("ru") || localStorage.getItem("vkcp.lang") === "ru";
note.innerHTML = token
  ? ru
    ? 'Запросы отправляются с токеном, с которым вы вошли в <a href="/">консоль</a>.'
    : 'Requests are sent with the token you signed in to the <a href="/">console</a> with.'
  : ru
    ? 'Нужен API-токен: откройте вкладку <b>Headers</b> внизу и вставьте <code>{"Authorization": "Bearer &lt;токен&gt;"}</code> — или войдите в <a href="/">консоль</a>, и эта страница возьмёт токен оттуда.'
    : 'Send an API token: open the <b>Headers</b> tab below and paste <code>{"Authorization": "Bearer &lt;token&gt;"}</code> — or sign in to the <a href="/">console</a> and this page picks the token up.';

createRoot(document.getElementById("graphiql")!).render(
  <GraphiQL fetcher={fetcher} defaultHeaders={token ? undefined : '{"Authorization": "Bearer <token>"}'} />,
);
