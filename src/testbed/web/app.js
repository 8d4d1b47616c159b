// Testbed Chat: the web client of chatprobe's embedded test platform.
// Every message element carries data-message-id, data-kind, data-sender,
// data-filename (files) and its text, for drivers to rely on — unless the
// testbed runs with --no-ids: then nothing but what a person sees is in the
// page (texts, a document's name, a picture without its name).
"use strict";
const NO_IDS = false;      // the server turns this on for --no-ids
const THUMBS = false;      // and this for --thumbnails: pictures as WeChat's chat shows them
const $ = (id) => document.getElementById(id);
let me = null;
let current = null;        // "direct:LOGIN" or "group:NAME"
let lastId = 0;
let poller = null;
const seen = {};           // chat -> highest message id seen, for unread badges

async function api(path, opts = {}) {
  const r = await fetch(path, Object.assign({ credentials: "same-origin" }, opts));
  if (r.status === 401 && path !== "/api/login") { showLogin(); throw new Error("logged out"); }
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function showLogin() {
  $("app-view").hidden = true;
  $("login-view").hidden = false;
  if (poller) clearInterval(poller);
}

async function start() {
  let info;
  try { info = await api("/api/me"); } catch (e) { showLogin(); return; }
  me = info.login;
  $("me").textContent = me;
  const contacts = $("contacts"), groups = $("groups");
  contacts.innerHTML = ""; groups.innerHTML = "";
  for (const c of info.contacts) contacts.appendChild(entry("direct:" + c.login, c.login));
  for (const g of info.groups) groups.appendChild(entry("group:" + g.name, g.name + " (" + g.members.length + ")"));
  $("login-view").hidden = true;
  $("app-view").hidden = false;
  if (poller) clearInterval(poller);
  poller = setInterval(poll, 400);
}

function entry(chat, label) {
  const li = document.createElement("li");
  if (NO_IDS) li.chat = chat; else li.dataset.chat = chat;
  li.id = "chat-" + chat.replace(/[^A-Za-z0-9_-]/g, "_");
  li.innerHTML = "<span></span><span class='badge' hidden></span>";
  li.firstChild.textContent = label;
  li.onclick = () => openChat(chat, label);
  return li;
}

function openChat(chat, label) {
  current = chat; lastId = 0;
  $("messages").innerHTML = "";
  $("chat-title").textContent = label;
  $("composer").hidden = false;
  document.querySelectorAll("#sidebar li").forEach((li) => li.classList.toggle("active", (NO_IDS ? li.chat : li.dataset.chat) === chat));
  poll();
  $("text-input").focus();
}

async function poll() {
  if (!current) return;
  const chat = current;
  let list;
  try { list = await api("/api/chats/" + encodeURIComponent(chat) + "/messages?after=" + lastId); } catch (e) { return; }
  if (chat !== current) return;
  for (const m of list) {
    if (m.id <= lastId) continue;
    render(m);
    lastId = m.id;
  }
  seen[chat] = lastId;
}

function render(m) {
  const box = $("messages");
  const div = document.createElement("div");
  div.className = "msg" + (m.sender === me ? " mine" : "") + (m.status === "blocked" ? " blocked" : "");
  if (!NO_IDS) {
    div.dataset.messageId = m.id;
    div.dataset.kind = m.kind;
    div.dataset.sender = m.sender;
    div.dataset.status = m.status;
  }
  const who = document.createElement("div");
  who.className = "who";
  who.textContent = m.sender + " · " + new Date(m.sent_at).toLocaleTimeString();
  div.appendChild(who);
  if (m.kind === "text") {
    const t = document.createElement("div");
    t.className = "text";
    t.textContent = m.text;
    div.appendChild(t);
  } else {
    if (!NO_IDS) div.dataset.filename = m.filename;
    if (m.kind === "image") {
      const img = document.createElement("img");
      img.alt = NO_IDS ? "" : m.filename;
      if (THUMBS) {
        // A small square thumbnail; the full picture one tap away.
        img.src = m.url + "/thumb"; img.className = "thumb";
        const full = document.createElement("a");
        full.className = "full"; full.href = m.url; full.target = "_blank";
        full.appendChild(img);
        div.appendChild(full);
      } else {
        img.src = m.url;
        div.appendChild(img);
      }
      if (NO_IDS) { box.appendChild(div); box.scrollTop = box.scrollHeight; return; }
    }
    const f = document.createElement("a");
    f.className = "file"; f.href = m.url; f.download = m.filename;
    f.textContent = m.filename;
    div.appendChild(f);
  }
  box.appendChild(div);
  box.scrollTop = box.scrollHeight;
}

$("login-form").onsubmit = async (ev) => {
  ev.preventDefault();
  $("login-error").hidden = true;
  try {
    await api("/api/login", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ login: $("login").value, password: $("password").value }) });
    $("password").value = "";
    await start();
  } catch (e) {
    $("login-error").textContent = e.message; $("login-error").hidden = false;
  }
};

$("logout").onclick = async () => { await api("/api/logout", { method: "POST" }).catch(() => {}); current = null; showLogin(); };

$("composer").onsubmit = async (ev) => {
  ev.preventDefault();
  const text = $("text-input").value;
  if (!text.trim() || !current) return;
  $("text-input").value = "";
  await api("/api/chats/" + encodeURIComponent(current) + "/text", { method: "POST",
    headers: { "Content-Type": "application/json" }, body: JSON.stringify({ text }) }).catch((e) => alert(e.message));
  poll();
};

$("file-input").onchange = async () => {
  const input = $("file-input");
  if (!input.files.length || !current) return;
  const fd = new FormData();
  fd.append("file", input.files[0]);
  input.value = "";
  await api("/api/chats/" + encodeURIComponent(current) + "/file", { method: "POST", body: fd }).catch((e) => alert(e.message));
  poll();
};

start();
