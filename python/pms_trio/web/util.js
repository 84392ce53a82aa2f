// Small helpers shared by the panels: building elements (text always as textContent, never as
// HTML), calling the HTTP API with errors in words, and formatting numbers.

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else if (key === "data") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key in node && key !== "list" && key !== "form") node[key] = value;  // those two are read-only properties
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

export function button(label, onclick, props = {}) {
  return el("button", {type: "button", text: label, onclick, ...props});
}

// Tokens (SPEC section 10), kept for this browser tab only: the API token (auth.apiToken) goes as
// Authorization: Bearer on the HTTP API, the stream token (a JWT) as data.token in publish and play.
export const tokens = {
  api: sessionStorage.getItem("pms.apiToken") || "",
  stream: sessionStorage.getItem("pms.streamToken") || "",
};

export function setToken(kind, value) {
  tokens[kind] = value.trim();
  sessionStorage.setItem(kind === "api" ? "pms.apiToken" : "pms.streamToken", tokens[kind]);
}

// data.token for stream.publish / stream.play when a stream token is set.
export function withToken(data) {
  return tokens.stream ? {...data, token: tokens.stream} : data;
}

// The HTTP API: JSON in and out. Throws an Error whose message says what went wrong in words
// (the server's own message when it sent one).
export async function api(path, {method = "GET", body = undefined} = {}) {
  let response;
  try {
    response = await fetch(path, {
      method, cache: "no-store",
      headers: {
        ...(body === undefined ? {} : {"Content-Type": "application/json"}),
        ...(tokens.api ? {"Authorization": `Bearer ${tokens.api}`} : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new Error(`cannot reach the server (${method} ${path}): ${e.message}`);
  }
  const text = await response.text();
  let doc = null;
  try { doc = text ? JSON.parse(text) : null; } catch { doc = null; }
  if (!response.ok || (doc && typeof doc.err === "number" && doc.err !== 0)) {
    let words = doc?.data?.msg || doc?.err_msg || text.trim() || response.statusText;
    if (response.status === 401) words += " (enter the API token under Tokens at the top)";
    const error = new Error(`${method} ${path}: ${response.status} ${words}`);
    error.status = response.status;
    throw error;
  }
  return doc;
}

// Shows a message (or clears it) in a panel's status line.
export function say(node, message, kind = "error") {
  node.textContent = message || "";
  node.dataset.kind = message ? kind : "";
}

export function seconds(value) {
  const s = Math.floor(value);
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
  return (d ? `${d}d ` : "") + (d || h ? `${h}h ` : "") + (d || h || m ? `${m}m ` : "") + `${s % 60}s`;
}

export function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

// Runs fn now and then every `ms` until it returns false; one call at a time.
export function every(ms, fn) {
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    let again = true;
    try { again = (await fn()) !== false; } catch (e) { console.warn(e); }
    if (again && !stopped) setTimeout(tick, ms);
  };
  tick();
  return () => { stopped = true; };
}

// Replaces the rows of a <tbody>, keyed, keeping rows that stay (and the focus in them).
export function syncRows(tbody, items, key, build, update) {
  const old = new Map([...tbody.children].map((row) => [row.dataset.key, row]));
  let previous = null;
  for (const item of items) {
    const k = key(item);
    let row = old.get(k);
    if (row) old.delete(k);
    else { row = build(item); row.dataset.key = k; }
    update(row, item);
    const next = previous ? previous.nextSibling : tbody.firstChild;
    if (next !== row) tbody.insertBefore(row, next);
    previous = row;
  }
  for (const row of old.values()) row.remove();
}
