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
// Another transport (a WebSocket) can take updater's place: any object
// with start() that calls chat.showMessage(message) for every message it
// receives, and send(fields) returning a Promise of the posted message,
// can be passed to chat.start(). showMessage dedups by DOM id "m<id>", so
// a message arriving twice (the sender's POST reply and its poll) shows once.
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
        this.input.value = "";
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
};

const updater = {
  cursor: null,
  errorSleepTime: FIRST_ERROR_SLEEP,
  stopped: false,

  start() {
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

document.addEventListener("DOMContentLoaded", () => {
  if (document.getElementById("messageform")) chat.start(updater);
});
