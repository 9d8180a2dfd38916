// The console's only way to the service: GraphQL over HTTP for queries and mutations, and
// graphql-transport-ws (the `graphql-ws` package) for subscriptions. Same origin, no CORS.
import { signal } from "@preact/signals";
import { createClient, type Client } from "graphql-ws";
import type { ErrorCode } from "./generated/graphql";

const TOKEN_KEY = "vkcp.token"; // GraphiQL (same origin) reads it too

/** The service's `extensions.code` (its `ErrorCode` enum), or what the console itself saw:
 * no answer (NETWORK), a socket that closed (CLOSED) or an answer that was not JSON (HTTP_<status>). */
export type ApiErrorCode = ErrorCode | "NETWORK" | "CLOSED" | `HTTP_${number}`;

export class ApiError extends Error {
  constructor(message: string, readonly code: ApiErrorCode | null) {
    super(message);
  }
}

let token = localStorage.getItem(TOKEN_KEY) ?? "";
const signedOutListeners = new Set<(reason: string) => void>();

export const getToken = () => token;

export function setToken(value: string): void {
  token = value;
  if (value) localStorage.setItem(TOKEN_KEY, value);
  else localStorage.removeItem(TOKEN_KEY);
  const old = wsClient;
  wsClient = null;
  old?.dispose();
  connection.value = "idle";
}

/** Called when the service rejects the stored token (revoked or expired). */
export function onSignedOut(listener: (reason: string) => void): () => void {
  signedOutListeners.add(listener);
  return () => signedOutListeners.delete(listener);
}

type GraphQLError = { message: string; extensions?: { code?: ErrorCode } };

export async function request<T, V = Record<string, unknown>>(query: string, variables?: V, bearer = token): Promise<T> {
  let response: Response;
  try {
    response = await fetch("/graphql", {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/graphql-response+json, application/json",
        ...(bearer ? { Authorization: `Bearer ${bearer}` } : {}),
      },
      body: JSON.stringify({ query, variables: variables ?? {} }),
    });
  } catch {
    throw new ApiError("network", "NETWORK");
  }
  let body: { data?: T; errors?: GraphQLError[] };
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`HTTP ${response.status}`, `HTTP_${response.status}`);
  }
  if (body.errors?.length) {
    const first = body.errors[0];
    const code = first.extensions?.code ?? null;
    if (response.status === 401 && bearer === token && token) {
      signedOutListeners.forEach((l) => l(first.message));
    }
    throw new ApiError(first.message, code);
  }
  return body.data as T;
}

/** Download a file the service keeps behind the token (exports): fetch it with the
 * Authorization header, then hand the browser the bytes under the file's own name. */
export async function download(url: string): Promise<void> {
  const response = await fetch(url, { headers: { Authorization: `Bearer ${token}` } });
  if (!response.ok) {
    let message = `HTTP ${response.status}`;
    try {
      message = (await response.json()).errors[0].message;
    } catch {
      /* not a JSON error body: keep the status */
    }
    throw new ApiError(message, `HTTP_${response.status}`);
  }
  const blob = await response.blob();
  const objectUrl = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = objectUrl;
  a.download = decodeURIComponent(new URL(url, location.href).pathname.split("/").pop() || "export");
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(objectUrl), 60_000);
}

let wsClient: Client | null = null;

/** The WebSocket's state, for screens that show it: `reconnecting` once a connection that was
 * up is being retried (graphql-ws retries with a randomised exponential backoff and sends the
 * open subscriptions again), `idle` when no subscription needs one. */
export type Connection = "idle" | "connecting" | "connected" | "reconnecting";
export const connection = signal<Connection>("idle");
let wasConnected = false;

function client(): Client {
  if (!wsClient) {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    wasConnected = false;
    const made: Client = createClient({
      url: `${scheme}://${location.host}/graphql`,
      connectionParams: () => ({ Authorization: `Bearer ${token}` }),
      lazy: true,
      retryAttempts: Infinity,
      shouldRetry: () => true,
      on: {
        connecting: () => { if (wsClient === made) connection.value = wasConnected ? "reconnecting" : "connecting"; },
        connected: () => { if (wsClient === made) { wasConnected = true; connection.value = "connected"; } },
        // A lazy client closes when its last subscription ends: nothing to reconnect then.
        closed: () => { if (wsClient === made && connection.value !== "idle") connection.value = active > 0 ? "reconnecting" : "idle"; },
      },
    });
    wsClient = made;
  }
  return wsClient;
}

let active = 0;

/** Subscribe; returns the function that ends the subscription. `onEnd` hears when the server
 * ends it: with null after a normal completion (e.g. a task reached its final state, or a slow
 * client was dropped), or with the server's error (e.g. SERVICE_UNAVAILABLE: subscribe again). */
export function subscribe<T, V = Record<string, unknown>>(
  query: string,
  variables: V,
  onData: (data: T) => void,
  onEnd?: (error: ApiError | null) => void,
): () => void {
  let ended = false;
  let failure: ApiError | null = null;
  active++;
  const finish = () => {
    if (ended) return;
    ended = true;
    active--;
    onEnd?.(failure);
  };
  const stop = client().subscribe<T>(
    { query, variables: variables as Record<string, unknown> },
    {
      next: (result) => {
        // An error while the subscription runs arrives as a result with errors, then complete.
        if (result.errors?.length) failure = apiError(result.errors as GraphQLError[]);
        else if (result.data) onData(result.data as T);
      },
      error: (err) => {
        failure = Array.isArray(err) ? apiError(err as GraphQLError[]) : new ApiError(err instanceof Error ? err.message : "closed", "CLOSED");
        finish();
      },
      complete: finish,
    },
  );
  return () => {
    if (!ended) { ended = true; active--; }
    stop();
  };
}

function apiError(errors: GraphQLError[]): ApiError {
  return new ApiError(errors[0]?.message ?? "error", errors[0]?.extensions?.code ?? null);
}
