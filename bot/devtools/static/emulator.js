// The emulator's chat page: play a made-up person talking to the bot.
// Everything is built with DOM calls and textContent; formatted bot texts are rebuilt from the
// Telegram entities the server parsed, so no markup from a message ever reaches innerHTML.
"use strict";

const API = "/emulator/api";
const TAGS = {
  bold: "b", italic: "i", underline: "u", strikethrough: "s", code: "code", pre: "pre",
  blockquote: "blockquote", expandable_blockquote: "blockquote", text_link: "a",
};
const SAFE_URL = /^(https?:|tg:|mailto:)/i;

let user = null;        // {id, first_name, language_code}
let after = 0;          // last seq seen
let generation = 0;     // bumps on user switch to stop the old poll loop
const nodes = new Map(); // message_id -> <li>

const $ = (id) => document.getElementById(id);

function elementFor(entity) {
  if (entity.type === "spoiler") {
    const span = document.createElement("span");
    span.className = "tg-spoiler";
    return span;
  }
  const tag = TAGS[entity.type] || "span";
  const el = document.createElement(tag);
  if (tag === "a") {
    if (SAFE_URL.test(entity.url || "")) {
      el.href = entity.url;
      el.rel = "noopener noreferrer";
      el.target = "_blank";
    }
  }
  return el;
}

// Render text[start:end) with nested entities (UTF-16 offsets, as JS strings count them).
function build(parent, text, entities, start, end) {
  let pos = start;
  let i = 0;
  while (i < entities.length) {
    const e = entities[i];
    const eEnd = Math.min(e.offset + e.length, end);
    let j = i + 1;
    while (j < entities.length && entities[j].offset < eEnd) j++;
    if (e.offset >= pos) {
      if (e.offset > pos) parent.append(text.slice(pos, e.offset));
      const el = elementFor(e);
      const inner = entities.slice(i + 1, j).map((c) => ({
        ...c, length: Math.min(c.offset + c.length, eEnd) - c.offset,
      }));
      build(el, text, inner, e.offset, eEnd);
      parent.append(el);
      pos = eEnd;
    }
    i = j;
  }
  if (pos < end) parent.append(text.slice(pos, end));
}

function describe(entry) {
  if (entry.kind === "location" && entry.location) {
    return `📍 ${entry.location.latitude}, ${entry.location.longitude}`;
  }
  if (entry.kind === "venue" && entry.venue) {
    return `📍 ${entry.venue.title} — ${entry.venue.address}`;
  }
  if (entry.kind !== "text") return `[${entry.kind}]` + (entry.caption ? ` ${entry.caption}` : "");
  return null;
}

function fillMessage(li, entry) {
  li.replaceChildren();
  li.className = `msg ${entry.direction}` + (entry.deleted ? " deleted" : "");
  const body = document.createElement("div");
  const special = describe(entry);
  const text = entry.plain_text || "";
  if (special !== null) {
    body.textContent = special;
  } else if (entry.direction === "out" && entry.entities && entry.entities.length) {
    const sorted = [...entry.entities].sort((a, b) => a.offset - b.offset || b.length - a.length);
    build(body, text, sorted, 0, text.length);
  } else {
    body.textContent = text;
  }
  li.append(body);
  const rows = (entry.reply_markup && entry.reply_markup.inline_keyboard) || [];
  if (rows.length) {
    const keyboard = document.createElement("div");
    keyboard.className = "keyboard";
    for (const row of rows) {
      const line = document.createElement("div");
      line.className = "row";
      for (const button of row) {
        const b = document.createElement("button");
        b.type = "button";
        b.textContent = button.text;
        if (button.url && SAFE_URL.test(button.url)) {
          b.addEventListener("click", () => window.open(button.url, "_blank", "noopener"));
        } else if (button.callback_data !== undefined) {
          b.addEventListener("click", () => press(entry.message_id, button.callback_data));
        }
        line.append(b);
      }
      keyboard.append(line);
    }
    li.append(keyboard);
  }
  const meta = document.createElement("span");
  meta.className = "meta";
  meta.textContent = (entry.edited ? "edited · " : "") +
    new Date(entry.date * 1000).toLocaleTimeString();
  li.append(meta);
}

function addNote(text) {
  const li = document.createElement("li");
  li.className = "event";
  li.textContent = text;
  $("chat").append(li);
}

function apply(data) {
  for (const entry of data.events) {
    if (entry.direction === "in" || entry.direction === "out") {
      if (entry.kind === "callback_query") {
        addNote(`pressed: ${entry.text}`);
        continue;
      }
      const li = document.createElement("li");
      fillMessage(li, entry);
      nodes.set(entry.message_id, li);
      $("chat").append(li);
    } else if (entry.direction === "action") {
      if (entry.kind === "action") {
        $("status").textContent = `bot: ${entry.action}…`;
        setTimeout(() => { $("status").textContent = ""; }, 3000);
      } else {
        addNote(entry.action);
      }
    } else if (entry.direction === "callback_answer" && entry.text) {
      addNote(entry.show_alert ? `⚠ ${entry.text}` : entry.text);
    }
  }
  for (const entry of data.changed) {
    const li = nodes.get(entry.message_id);
    if (li) fillMessage(li, entry);
  }
  if (data.events.length) $("chat").lastElementChild.scrollIntoView({ block: "end" });
}

async function call(path, body) {
  const response = await fetch(API + path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function sender() {
  return { user_id: user.id, first_name: user.first_name, language_code: user.language_code };
}

async function guarded(action) {
  try {
    $("status").textContent = "";
    await action();
  } catch (err) {
    $("status").textContent = String(err.message || err);
  }
}

const press = (messageId, data) =>
  guarded(() => call("/press", { user_id: user.id, message_id: messageId, callback_data: data }));

async function poll(gen) {
  while (gen === generation) {
    try {
      const url = `${API}/chats/${user.id}/events?after=${after}&wait=25`;
      const response = await fetch(url, { cache: "no-store" });
      const data = await response.json();
      if (gen !== generation) return;
      apply(data);
      after = data.last_seq;
    } catch (err) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

function switchUser() {
  user = {
    id: parseInt($("user-id").value, 10),
    first_name: $("first-name").value.trim() || "Test",
    language_code: $("language").value,
  };
  generation += 1;
  after = 0;
  nodes.clear();
  $("chat").replaceChildren();
  poll(generation);
}

document.addEventListener("DOMContentLoaded", () => {
  $("who").addEventListener("submit", (event) => {
    event.preventDefault();
    switchUser();
  });
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("text").value;
    if (!text.trim()) return;
    $("text").value = "";
    const isCommand = /^\/[A-Za-z0-9_]+/.test(text);
    guarded(() => call(isCommand ? "/send/command" : "/send/text", { ...sender(), text }));
  });
  for (const button of document.querySelectorAll("[data-command]")) {
    button.addEventListener("click", () =>
      guarded(() => call("/send/command", { ...sender(), command: button.dataset.command })));
  }
  for (const button of document.querySelectorAll("[data-location]")) {
    const [latitude, longitude] = button.dataset.location.split(",").map(Number);
    button.addEventListener("click", () =>
      guarded(() => call("/send/location", { ...sender(), latitude, longitude })));
  }
  for (const button of document.querySelectorAll("[data-media]")) {
    button.addEventListener("click", () =>
      guarded(() => call("/send/media", { ...sender(), media: button.dataset.media })));
  }
  switchUser();
});
