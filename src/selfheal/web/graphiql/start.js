// GraphiQL for selfheal's /graphql: every file it runs is served by the agent (no CDN).
// The API key stays in this tab (sessionStorage, the dashboard's own slot) and travels
// in the API key header, and in the connection_init payload of subscriptions.
"use strict";

const KEY_STORAGE = "selfheal.apiKey";
const EXAMPLE = `# The services of your key's tenant (Ctrl-Enter runs it)
{
  services { id status lastCheck { at ok responseMs } }
}

# Live events (open a second tab for it):
# subscription { events(types: ["incident.opened"]) { type at data } }
`;

function start(key) {
  const url = new URL("/graphql", window.location.href);
  const ws = new URL(url);
  ws.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const fetcher = GraphiQL.createFetcher({
    url: url.toString(),
    subscriptionUrl: ws.toString(),
    headers: { [document.body.dataset.apiKeyHeader || "X-API-Key"]: key },
    wsConnectionParams: { api_key: key },
  });
  const root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(React.createElement(GraphiQL, { fetcher, defaultQuery: EXAMPLE }));
}

const form = document.getElementById("key-form");
const input = document.getElementById("api-key");
form.addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY_STORAGE, input.value.trim());
  window.location.reload();
});
const stored = sessionStorage.getItem(KEY_STORAGE);
if (stored) {
  input.value = stored;
  start(stored);
}
