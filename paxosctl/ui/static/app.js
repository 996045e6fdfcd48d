// paxosctl ui: the page. Draws what the server's event stream says
// (paxosctl/ui/watch.py lists the events): the agents by role, state and
// leader; the decided log growing; notes (leader changes, kills,
// restarts); and the protocol messages, one moving dot per message, or,
// above AGGREGATE_RATE messages a second, counts per link instead.
"use strict";

const TOKEN = document.body.dataset.token;
const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 900, HEIGHT = 560, RADIUS = 30;
const AGGREGATE_RATE = 40;   // messages a second above which dots become counts
const FLIGHT_MS = 700;       // how long a dot takes from sender to receiver
const MAX_LOG = 200;         // decided entries kept on the page
const MAX_NOTES = 100;
const KINDS = new Set(["prepare", "promise", "accept", "accepted", "decide", "nack"]);

const view = {
  agents: new Map(),   // name -> {g, x, y, row}
  layoutKey: "",
  leader: null,
  sent: [],            // times (ms) of recent messages, for the rate
  perLink: new Map(),  // "a>b" -> count, while aggregating
  aggregating: false,
  decided: 0,
  messages: 0,         // messages drawn or counted since the page opened
};

function el(name, attrs, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function $(id) { return document.getElementById(id); }

// -------------------------------------------------------------- the agents

// Columns by role when each agent plays one (proposers, acceptors,
// learners, as the paper draws them); a ring when they are replicas.
function layout(rows) {
  const single = rows.every(r => r.roles.length === 1);
  const at = new Map();
  const labels = [];
  if (single) {
    const columns = ["proposer", "acceptor", "learner"];
    columns.forEach((role, c) => {
      const group = rows.filter(r => r.roles[0] === role);
      const x = WIDTH * (c + 0.5) / columns.length;
      labels.push([role + "s", x]);
      group.forEach((r, i) => at.set(r.name, [x, 70 + (HEIGHT - 110) * (i + 0.5) / group.length]));
    });
    rows.filter(r => !at.has(r.name)).forEach((r, i) => at.set(r.name, [60, 60 + 80 * i]));
  } else {
    rows.forEach((r, i) => {
      const a = -Math.PI / 2 + 2 * Math.PI * i / rows.length;
      at.set(r.name, [WIDTH / 2 + 200 * Math.cos(a), HEIGHT / 2 + 200 * Math.sin(a)]);
    });
  }
  return {at, labels};
}

function drawAgents(rows) {
  const key = rows.map(r => r.name + ":" + r.roles.join("+")).join(",");
  const root = $("agents");
  if (key !== view.layoutKey) {
    view.layoutKey = key;
    root.replaceChildren();
    view.agents.clear();
    const {at, labels} = layout(rows);
    for (const [text, x] of labels) el("text", {class: "column", x, y: 30}, root).textContent = text;
    for (const r of rows) {
      const [x, y] = at.get(r.name);
      const g = el("g", {class: "agent", "data-name": r.name, transform: `translate(${x},${y})`}, root);
      el("circle", {class: "crown", r: RADIUS + 6}, g);
      el("circle", {class: "body", r: RADIUS}, g);
      el("text", {class: "name", y: -RADIUS - 10}, g).textContent = r.name;
      el("text", {class: "role", y: 4}, g).textContent = r.roles.map(x => x[0].toUpperCase()).join("");
      el("text", {class: "sub", y: RADIUS + 16}, g);
      el("title", {}, g);
      view.agents.set(r.name, {g, x, y});
    }
  }
  for (const r of rows) {
    const a = view.agents.get(r.name);
    const state = r.state === "running" || r.state === "answered" ? "running"
      : (["backoff", "starting", "fatal"].includes(r.state) ? r.state : "down");
    a.g.setAttribute("class", `agent ${state}${r.leader ? " leader" : ""}`);
    a.g.dataset.state = r.state;
    a.g.dataset.leader = r.leader ? "yes" : "no";
    a.g.dataset.incarnation = r.incarnation == null ? "" : String(r.incarnation);
    const bits = [r.state];
    if (r.ballot) bits.push("b " + r.ballot);
    if (r.applied != null) bits.push("applied " + r.applied);
    a.g.querySelector("text.sub").textContent = bits.join(" · ");
    a.g.querySelector("title").textContent =
      `${r.name} (${r.roles.join(", ")}): ${r.state}` +
      (r.pid ? `, pid ${r.pid}` : "") + (r.incarnation != null ? `, incarnation ${r.incarnation}` : "") +
      (r.restarts ? `, ${r.restarts} restarts` : "") + (r.error ? ` (${r.error})` : "");
  }
}

function onState(s) {
  $("cluster").textContent = s.cluster;
  drawAgents(s.agents);
  $("leader").textContent = s.leader || "none";
  document.body.dataset.leader = s.leader || "";
  const chaos = s.chaos ? Object.entries(s.chaos).map(([k, v]) => `${k}=${v}`).join(", ") : "";
  $("chaos").textContent = chaos ? "chaos: " + chaos : "";
  const panel = $("actions");
  panel.hidden = !s.actions;
  if (s.actions) {
    const select = $("target");
    const names = s.agents.map(a => a.name);
    if ([...select.options].map(o => o.value).join() !== names.join()) {
      select.replaceChildren(...names.map(n => new Option(n, n)));
    }
  }
}

// -------------------------------------------------------------- the log

function onDecided(entries) {
  const log = $("log");
  for (const e of entries) {
    const li = document.createElement("li");
    li.dataset.slot = e.slot;
    li.dataset.position = e.position;
    li.textContent = `${e.position}  ${e.text}`;
    if (e.noop) li.classList.add("noop");
    li.classList.add("fresh");
    log.prepend(li);
    setTimeout(() => li.classList.remove("fresh"), 50);
    view.decided += 1;
  }
  while (log.children.length > MAX_LOG) log.lastChild.remove();
  $("count").textContent = `(${view.decided} shown since the page opened)`;
}

function onNote(n) {
  const li = document.createElement("li");
  li.textContent = `${new Date(n.at * 1000).toLocaleTimeString()}  ${n.text}`;
  const notes = $("notes");
  notes.prepend(li);
  while (notes.children.length > MAX_NOTES) notes.lastChild.remove();
}

// -------------------------------------------------------------- the messages

function onMessages(records) {
  const now = performance.now();
  for (const r of records) {
    if (r.dir === "local" && r.kind === "decided") { flash(r.agent); continue; }
    if (r.dir !== "send" || !r.peer) continue;
    view.sent.push(now);
    view.messages += 1;
    if (view.aggregating) {
      const key = r.agent + ">" + r.peer;
      view.perLink.set(key, (view.perLink.get(key) || 0) + 1);
    } else {
      fly(r);
    }
  }
  document.body.dataset.messages = String(view.messages);
}

// More records than the server sends one by one: counts per link.
function onTraffic(t) {
  const now = performance.now();
  for (const [a, b, n] of t.links) {
    const key = a + ">" + b;
    view.perLink.set(key, (view.perLink.get(key) || 0) + n);
    for (let i = 0; i < n; i++) view.sent.push(now);
    view.messages += n;
  }
  view.aggregating = true;
}

function flash(name) {
  const a = view.agents.get(name);
  if (!a) return;
  a.g.classList.add("flash");
  setTimeout(() => a.g.classList.remove("flash"), 300);
}

function fly(r) {
  const from = view.agents.get(r.agent), to = view.agents.get(r.peer);
  if (!from || !to) return;
  const kind = KINDS.has(r.kind) ? r.kind : "other";
  const dot = el("circle", {r: 6, class: kind}, $("flying"));
  const t = el("title", {}, dot);
  t.textContent = `${r.kind} ${r.agent} → ${r.peer}` + (r.ballot ? ` ballot ${r.ballot}` : "") +
    (r.slots ? ` slots ${r.slots[0]}..${r.slots[1] == null ? "" : r.slots[1]}` : "");
  const start = performance.now();
  const dropped = Boolean(r.dropped);
  function step(t) {
    const f = Math.min(1, (t - start) / FLIGHT_MS);
    const g = dropped ? Math.min(f, 0.5) : f;   // a dropped message stops half way
    dot.setAttribute("cx", from.x + (to.x - from.x) * g);
    dot.setAttribute("cy", from.y + (to.y - from.y) * g);
    if (dropped && f > 0.5) dot.setAttribute("opacity", String(2 - 2 * f));
    if (f < 1) requestAnimationFrame(step); else dot.remove();
  }
  requestAnimationFrame(step);
}

// Once a second: the rate, the mode, and while aggregating the per-link counts.
function tick() {
  const now = performance.now();
  view.sent = view.sent.filter(t => now - t < 1000);
  const rate = view.sent.length;
  $("rate").textContent = rate ? `${rate} msg/s${view.aggregating ? " (counted per link)" : ""}` : "";
  const links = $("links");
  links.replaceChildren();
  if (view.aggregating) {
    const top = Math.max(1, ...view.perLink.values());
    for (const [key, n] of view.perLink) {
      const [a, b] = key.split(">").map(x => view.agents.get(x));
      if (!a || !b) continue;
      el("line", {class: "link", x1: a.x, y1: a.y, x2: b.x, y2: b.y,
                  "stroke-width": 1 + 7 * n / top}, links);
      el("text", {class: "linkcount", x: a.x + (b.x - a.x) * 0.35, y: a.y + (b.y - a.y) * 0.35 - 4},
         links).textContent = String(n);
    }
  }
  view.perLink.clear();
  view.aggregating = rate > AGGREGATE_RATE;
  document.body.dataset.mode = view.aggregating ? "aggregate" : "animate";
  document.body.dataset.messages = String(view.messages);
}

// -------------------------------------------------------------- actions

async function act(body) {
  const said = $("said");
  said.textContent = "…";
  try {
    const res = await fetch(`action?token=${encodeURIComponent(TOKEN)}`, {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    const reply = await res.json().catch(() => ({error: res.statusText}));
    said.textContent = res.ok ? `${body.action}: done` : `${body.action}: ${reply.error}`;
  } catch (e) {
    said.textContent = `${body.action}: ${e}`;
  }
}

function wireActions() {
  const target = () => $("target").value;
  $("kill").addEventListener("click", () => act({action: "kill", agent: target()}));
  $("cut").addEventListener("click", () => act({action: "cut", agent: target()}));
  $("heal").addEventListener("click", () => act({action: "heal"}));
  $("slow").addEventListener("change", e => act({action: "slow", seconds: Number(e.target.value)}));
}

// -------------------------------------------------------------- the stream

function connect() {
  const source = new EventSource(`events?token=${encodeURIComponent(TOKEN)}`);
  const conn = $("conn");
  source.addEventListener("open", () => {
    conn.textContent = "live"; conn.className = "pill live"; document.body.dataset.connected = "yes";
  });
  source.addEventListener("error", () => {
    conn.textContent = "reconnecting"; conn.className = "pill lost"; document.body.dataset.connected = "no";
  });
  const on = (name, handle) => source.addEventListener(name, ev => handle(JSON.parse(ev.data)));
  on("state", onState);
  on("decided", onDecided);
  on("note", onNote);
  on("messages", onMessages);
  on("traffic", onTraffic);
}

wireActions();
connect();
setInterval(tick, 1000);
