// The browser side of squall's long-polling chat: Tornado's
// demos/chat/static/chat.js (same wire protocol) in plain JavaScript —
// fetch instead of jQuery, and a capped exponential backoff.
//
//   chat     the page: the message form, showing messages, the status line.
//   updater  the long-poll transport: POST /a/message/updates with the
//            cursor (id of the last message we have) → show what comes
//            back → poll again at once. On errors wait 0.5 s, 1 s, 2 s, …
//            (at most 30 s) and try again, until the server answers.
//
//   socket   the WebSocket transport: /chatsocket?room=…&cursor=…, the
//            same message objects pushed as they are posted, plus typed
//            notices ({"type": "join"|"leave"|"sent"|"error"}). Used when
//            the browser has WebSocket and the page was not loaded with
//            ?transport=longpoll. If the socket never opens (a proxy that
//            refuses upgrades, a lost login), the page falls back to
//            updater; if an open socket drops, it reconnects with the same
//            backoff and catches up through the cursor.
//
// A transport is any object with start() that calls chat.showMessage(message)
// for every message it receives, and send(fields) returning a Promise of the
// posted message (or of {id}). showMessage dedups by DOM id "m<id>", so a
// message arriving twice (the POST reply and the poll, or a reconnect's
// catch-up) shows once.
"use strict";

/** Longest wait between retries after errors, in milliseconds. */
const MAX_ERROR_SLEEP = 30000;
/** First wait after an error, in milliseconds (Tornado's errorSleepTime). */
const FIRST_ERROR_SLEEP = 500;

/** The value of cookie `name`, or "" (the _xsrf token lives there). */
function getCookie(name) {
  const match = document.cookie.match("(?:^|;\\s*)" + name + "=([^;]*)");
  return match ? decodeURIComponent(match[1]) : "";
}

/** POST form `fields` plus `_xsrf` to `url`; resolves to the Response. */
function post(url, fields) {
  const body = new URLSearchParams(fields);
  body.set("_xsrf", getCookie("_xsrf"));
  return fetch(url, {
    method: "POST",
    body: body,
    credentials: "same-origin",
    headers: { Accept: "application/json" },
  });
}

/** The error message of a failed API answer ({"error": {"message"}}). */
async function errorText(response) {
  try {
    const data = await response.json();
    if (data && data.error && data.error.message) return data.error.message;
  } catch (ignored) {
    // Not JSON: fall through to the status.
  }
  return "The server answered " + response.status + ".";
}

const chat = {
  room: null,
  form: null,
  input: null,
  inbox: null,
  transport: null,

  /** Wire up the page and start `transport` (updater by default). */
  start(transport) {
    this.form = document.getElementById("messageform");
    this.input = document.getElementById("message");
    this.inbox = document.getElementById("inbox");
    this.room = document.getElementById("room").dataset.room;
    this.transport = transport;
    this.localizeTimes(this.inbox);
    this.scrollToEnd();
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.newMessage();
    });
    this.input.focus();
    transport.start();
  },

  /** Send what is in the input (Enter or the button submits the form). */
  newMessage() {
    const body = this.input.value;
    if (!body.trim()) return;
    const button = this.form.querySelector("button[type=submit]");
    button.disabled = true;
    this.transport
      .send({ body: body, room: this.room })
      .then((message) => {
        // Clear only what was sent: text typed while it was in flight stays.
        if (this.input.value === body) this.input.value = "";
        if (document.querySelector("#status.error")) this.setStatus("");
        this.showMessage(message);
        this.scrollToEnd();
      })
      .catch((error) => this.setStatus(error.message, "error"))
      .finally(() => {
        button.disabled = false;
        this.input.focus();
      });
  },

  /** Add a message to the inbox unless it is already there. */
  showMessage(message) {
    // Only message objects have html; notices and acks are not shown here.
    if (!message || typeof message.html !== "string") return;
    if (document.getElementById("m" + message.id)) return;
    // message.html was rendered and escaped by the server.
    const template = document.createElement("template");
    template.innerHTML = message.html.trim();
    const node = template.content.firstElementChild;
    if (!node) return;
    const empty = document.getElementById("empty");
    if (empty) empty.remove();
    const atEnd = this.inbox.scrollHeight - this.inbox.scrollTop - this.inbox.clientHeight < 60;
    this.localizeTimes(node);
    this.inbox.appendChild(node);
    if (atEnd) this.scrollToEnd();
  },

  /** The id of the newest message on the page, or null. */
  lastMessageId() {
    const messages = this.inbox.querySelectorAll(".message");
    return messages.length ? messages[messages.length - 1].id.slice(1) : null;
  },

  /** Show `text` in the status line (`kind` "error" or "warn"); "" hides it. */
  setStatus(text, kind) {
    const status = document.getElementById("status");
    status.textContent = text;
    status.className = "status " + (kind || "");
    status.hidden = !text;
  },

  /** Show <time datetime> elements in the browser's time zone. */
  localizeTimes(root) {
    const times = root.matches && root.matches("time") ? [root] : root.querySelectorAll("time[datetime]");
    for (const time of times) {
      const date = new Date(time.getAttribute("datetime"));
      if (isNaN(date)) continue;
      time.textContent = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      time.title = date.toLocaleString();
    }
  },

  scrollToEnd() {
    this.inbox.scrollTop = this.inbox.scrollHeight;
  },

  /** Say which transport carries updates ("WebSocket", "long polling"). */
  setTransport(name) {
    const label = document.getElementById("transport");
    if (!label) return;
    label.textContent = name;
    label.parentElement.hidden = false;
  },

  /** A join/leave notice: one quiet line in the room's header. */
  showNotice(notice) {
    const line = document.getElementById("presence");
    if (!line || typeof notice.user !== "string") return;
    const verb = notice.type === "join" ? "joined" : "left";
    const here = Number.isInteger(notice.members) ? " · " + notice.members + " here" : "";
    line.textContent = notice.user + " " + verb + here;
    line.hidden = false;
  },

  /** Replace the transport (the socket falling back to long polling). */
  switchTo(transport) {
    this.transport = transport;
    transport.start();
  },
};

const updater = {
  cursor: null,
  errorSleepTime: FIRST_ERROR_SLEEP,
  stopped: false,

  start() {
    chat.setTransport("long polling");
    this.cursor = chat.lastMessageId();
    this.poll();
  },

  /** Post a message over HTTP; resolves to the message object. */
  send(fields) {
    return post("/a/message/new", fields).then(async (response) => {
      if (!response.ok) throw new Error(await errorText(response));
      return response.json();
    });
  },

  /** One long poll: resolves when the room has messages after the cursor. */
  poll() {
    if (this.stopped) return;
    const fields = { room: chat.room };
    if (this.cursor) fields.cursor = this.cursor;
    post("/a/message/updates", fields)
      .then(async (response) => {
        if (response.status === 403) return this.signedOut(await errorText(response));
        if (!response.ok) throw new Error(await errorText(response));
        this.onSuccess(await response.json());
      })
      .catch((error) => this.onError(error));
  },

  onSuccess(response) {
    this.newMessages(response);
    if (this.errorSleepTime !== FIRST_ERROR_SLEEP) chat.setStatus("");
    this.errorSleepTime = FIRST_ERROR_SLEEP;
    window.setTimeout(() => this.poll(), 0);
  },

  onError(error) {
    const wait = this.errorSleepTime;
    this.errorSleepTime = Math.min(wait * 2, MAX_ERROR_SLEEP);
    console.log("Poll error (" + error.message + "); retrying in", wait, "ms");
    chat.setStatus("Connection lost; retrying in " + Math.ceil(wait / 1000) + " s…", "warn");
    window.setTimeout(() => this.poll(), wait);
  },

  newMessages(response) {
    const messages = Array.isArray(response.messages) ? response.messages : [];
    for (const message of messages) chat.showMessage(message);
    if (messages.length) this.cursor = messages[messages.length - 1].id;
  },

  /** 403: the login (or the _xsrf cookie) is gone; polling cannot succeed. */
  signedOut(reason) {
    this.stopped = true;
    chat.setStatus(reason + " Reload the page to log in again.", "error");
  },
};

const socket = {
  ws: null,
  /** Has any socket opened? If none ever does, long polling takes over. */
  everOpened: false,
  retrySleep: FIRST_ERROR_SLEEP,
  /** Sends waiting for their "sent" or "error" answer, by ref. */
  pending: new Map(),
  nextRef: 1,

  start() {
    chat.setTransport("connecting…");
    this.connect();
  },

  /** /chatsocket for this room; the cursor asks for what we missed. */
  url() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    let url = scheme + location.host + "/chatsocket?room=" + encodeURIComponent(chat.room);
    const cursor = chat.lastMessageId();
    if (cursor) url += "&cursor=" + encodeURIComponent(cursor);
    return url;
  },

  connect() {
    const ws = new WebSocket(this.url());
    this.ws = ws;
    ws.onopen = () => {
      this.everOpened = true;
      this.retrySleep = FIRST_ERROR_SLEEP;
      chat.setTransport("WebSocket");
      if (document.querySelector("#status.warn")) chat.setStatus("");
    };
    ws.onmessage = (event) => this.receive(event.data);
    ws.onclose = () => this.onClose(ws);
  },

  onClose(ws) {
    if (this.ws !== ws) return;
    this.ws = null;
    for (const { reject } of this.pending.values()) reject(new Error("Connection lost; not sent."));
    this.pending.clear();
    if (!this.everOpened) {
      console.log("WebSocket unavailable; falling back to long polling");
      chat.switchTo(updater);
      return;
    }
    const wait = this.retrySleep;
    this.retrySleep = Math.min(wait * 2, MAX_ERROR_SLEEP);
    chat.setTransport("reconnecting…");
    chat.setStatus("Connection lost; reconnecting in " + Math.ceil(wait / 1000) + " s…", "warn");
    window.setTimeout(() => this.connect(), wait);
  },

  /** One frame from the server: a message (no "type") or a notice. */
  receive(text) {
    let data;
    try {
      data = JSON.parse(text);
    } catch (ignored) {
      return;
    }
    if (!data || typeof data !== "object") return;
    if (data.type === undefined) {
      chat.showMessage(data);
    } else if (data.type === "join" || data.type === "leave") {
      chat.showNotice(data);
    } else if (data.type === "sent" || data.type === "error") {
      const waiting = this.pending.get(data.ref);
      if (!waiting) {
        if (data.type === "error") chat.setStatus(errorMessage(data), "error");
        return;
      }
      this.pending.delete(data.ref);
      if (data.type === "sent") waiting.resolve({ id: data.id });
      else waiting.reject(new Error(errorMessage(data)));
    }
  },

  /** Post {"body", "ref"}; resolves on "sent", rejects on "error". */
  send(fields) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new Error("Not connected; reconnecting…"));
    }
    const ref = String(this.nextRef++);
    return new Promise((resolve, reject) => {
      this.pending.set(ref, { resolve, reject });
      ws.send(JSON.stringify({ body: fields.body, ref: ref }));
    });
  },
};

/** The text of a socket's {"type": "error", "error": {"message"}}. */
function errorMessage(data) {
  return (data.error && data.error.message) || "The message was refused.";
}

/** WebSocket unless the browser lacks it or ?transport=longpoll says no. */
function chooseTransport() {
  const wanted = new URLSearchParams(location.search).get("transport");
  return wanted === "longpoll" || !("WebSocket" in window) ? updater : socket;
}

document.addEventListener("DOMContentLoaded", () => {
  if (document.getElementById("messageform")) chat.start(chooseTransport());
});
