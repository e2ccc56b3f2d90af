// End-to-end test of the squall chat in real headless Chromium
// (playwright-core driving Debian's /usr/bin/chromium). Alice's pages use
// the WebSocket (/chatsocket, the default); Bob's lobby is loaded with
// ?transport=longpoll, so the two transports share one room throughout.
//
//   node chat.mjs <base-url> <output-dir>
//
// Run by tests/chat_browser.rs against a fresh server. Exits non-zero on the
// first failed check; saves screenshots to <output-dir>.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const [base, outDir] = process.argv.slice(2);
if (!base || !outDir) {
  console.error("usage: node chat.mjs <base-url> <output-dir>");
  process.exit(2);
}
mkdirSync(outDir, { recursive: true });

const SEEN_WITHIN = 5000; // "the other sees it within a few seconds"
const problems = [];
/** Each page's last console lines, printed if the run fails (a flaky
 * failure is then diagnosable from the CI log: chat.js logs every poll
 * error with the backoff it chose). */
const recentConsole = [];
const RECENT_CONSOLE_LINES = 80;
const startedAt = Date.now();

function check(ok, what) {
  if (!ok) throw new Error("check failed: " + what);
  console.log("ok - " + what);
}

/** A page whose script errors are collected as test failures. */
async function newPage(context, who) {
  const page = await context.newPage();
  page.on("pageerror", (e) => problems.push(`${who}: page error: ${e.message}`));
  page.on("console", (m) => {
    recentConsole.push(`+${Date.now() - startedAt} ms ${who} ${m.type()}: ${m.text()}`);
    if (recentConsole.length > RECENT_CONSOLE_LINES) recentConsole.shift();
    if (m.type() === "error" && !/Failed to load resource|ERR_FAILED/.test(m.text())) {
      problems.push(`${who}: console error: ${m.text()}`);
    }
  });
  return page;
}

/** Register `name` through the real form; ends on the lobby. */
async function register(page, name) {
  await page.goto(base + "/");
  check(page.url().startsWith(base + "/auth/login"), `${name}: / redirects to the login page`);
  await page.click("text=Create an account");
  await page.fill("input[name=name]", name);
  await page.fill("input[name=password]", "password-" + name);
  await Promise.all([page.waitForURL(base + "/"), page.click("button[type=submit]")]);
  check((await page.textContent("#me")) === name, `${name}: registered and in the lobby`);
}

/** Type `text` into the message box, press Enter, and wait until the page
 * has sent it: the transport acknowledged it, so the input is cleared and
 * the submit button enabled again. Returning at the key press was a race:
 * while a send is in flight the button is disabled, so the next Enter does
 * nothing, and the send's completion clears the input, erasing text typed
 * since — the next message was lost without an error. */
async function say(page, text) {
  await page.fill("#message", text);
  await page.press("#message", "Enter");
  await page.waitForFunction(
    () =>
      document.getElementById("message").value === "" &&
      !document.querySelector("#messageform button[type=submit]").disabled,
    null,
    { timeout: SEEN_WITHIN },
  );
}

/** Wait until a message body with exactly `text` shows on `page`. */
async function waitForMessage(page, text, timeout = SEEN_WITHIN) {
  await page.waitForFunction(
    (t) => [...document.querySelectorAll("#inbox .message .body")].some((b) => b.textContent === t),
    text,
    { timeout },
  );
}

/** Wait until the page's "Live updates:" label says `name`. */
async function waitForTransport(page, name, timeout = SEEN_WITHIN) {
  await page.waitForFunction((n) => document.getElementById("transport").textContent === n, name, { timeout });
}

/** Wait until the presence line reads `text`. */
async function waitForPresence(page, text, timeout = SEEN_WITHIN) {
  await page.waitForFunction(
    (t) => {
      const line = document.getElementById("presence");
      return !line.hidden && line.textContent === t;
    },
    text,
    { timeout },
  );
}

async function countMessages(page, text) {
  return page.$$eval("#inbox .message .body", (bodies, t) => bodies.filter((b) => b.textContent === t).length, text);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});

try {
  const aliceContext = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const bobContext = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const alice = await newPage(aliceContext, "alice");
  const bob = await newPage(bobContext, "bob");
  await register(alice, "alice");
  await register(bob, "bob");
  await bob.goto(base + "/?transport=longpoll");
  await waitForTransport(alice, "WebSocket");
  check(true, "alice's page uses the WebSocket");
  await waitForTransport(bob, "long polling");
  check(true, "bob's page (?transport=longpoll) uses long polling");

  // One types and presses Enter; the other sees it within a few seconds.
  const hello = "Hello Bob! <b>not bold</b> see http://example.com";
  const started = Date.now();
  await say(alice, hello);
  await waitForMessage(bob, hello);
  console.log(`# bob saw alice's message after ${Date.now() - started} ms`);
  check(true, "bob sees alice's message");
  check(
    await alice.$eval("#message", (el) => el.value === "" && document.activeElement === el),
    "the input is cleared and keeps focus",
  );
  check((await bob.$$("#inbox .message .body b")).length === 0, "HTML in a body is shown as text");
  check((await bob.$$("#inbox .message .body a[href='http://example.com']")).length === 1, "URLs are linked");
  await waitForMessage(alice, hello);
  check((await countMessages(alice, hello)) === 1, "the sender sees its message once (dedup by id)");

  await say(bob, "Hi Alice");
  await waitForMessage(alice, "Hi Alice");
  check(true, "alice sees bob's reply");

  // Text typed while a send is in flight survives its acknowledgement.
  // bob's POST is held at the route until he has typed his next line.
  let releasePost;
  const postHeld = new Promise((resolve) => (releasePost = resolve));
  let postSeen;
  const postArrived = new Promise((resolve) => (postSeen = resolve));
  await bob.route("**/a/message/new", async (route) => {
    postSeen();
    await postHeld;
    await route.continue();
  });
  await bob.fill("#message", "sent while typing");
  await bob.press("#message", "Enter");
  await postArrived;
  await bob.fill("#message", "the next line, half typed");
  releasePost();
  await waitForMessage(bob, "sent while typing");
  await bob.waitForFunction(
    () => !document.querySelector("#messageform button[type=submit]").disabled,
    null,
    { timeout: SEEN_WITHIN },
  );
  await bob.unroute("**/a/message/new");
  check(
    (await bob.$eval("#message", (el) => el.value)) === "the next line, half typed",
    "text typed while a message was being sent is kept",
  );
  await bob.fill("#message", "");

  // A message in another room does not reach the lobby.
  const side = await newPage(aliceContext, "alice/side");
  await side.goto(base + "/room/side-room");
  check((await side.textContent(".room-head h1")).includes("side-room"), "alice opens #side-room");
  await say(side, "secret in side-room");
  await waitForMessage(side, "secret in side-room");
  await say(alice, "after the side message");
  await waitForMessage(bob, "after the side message");
  check((await countMessages(bob, "secret in side-room")) === 0, "a message in another room is not seen");

  // The client recovers by itself after errors (backoff, then resume).
  // The outage is a flag read by one route handler that stays installed.
  // (This step used to time out now and then: "after the outage" was never
  // sent, because `say` returned before alice's "trigger an error" was
  // acknowledged; see `say`.)
  let outage = true;
  await bob.route("**/a/message/updates", (route) => (outage ? route.abort() : route.continue()));
  await say(alice, "trigger an error");
  await bob.waitForSelector("#status.warn:not([hidden])", { timeout: SEEN_WITHIN });
  check(true, "bob's page shows that the connection is lost");
  outage = false;
  await say(alice, "after the outage");
  await waitForMessage(bob, "after the outage", 15000);
  await waitForMessage(bob, "trigger an error", 1000);
  await bob.waitForSelector("#status[hidden]", { state: "attached", timeout: SEEN_WITHIN });
  check(true, "bob recovers without reloading and catches up");

  // Screenshots: desktop and phone width (reloaded: the room list now
  // has #side-room, and the history comes from the server's page).
  await bob.reload();
  await waitForMessage(bob, "after the outage");
  check((await countMessages(bob, "secret in side-room")) === 0, "the reloaded lobby has no side-room message");
  check((await bob.$$("#rooms a[href='/room/side-room']")).length === 1, "the sidebar lists #side-room");
  await bob.screenshot({ path: join(outDir, "chat-desktop.png") });
  await bob.setViewportSize({ width: 390, height: 780 });
  await bob.screenshot({ path: join(outDir, "chat-phone.png") });

  // ----- WebSocket only: chat between two contexts, notices, reconnect,
  // fallback.
  const carolContext = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const carol = await newPage(carolContext, "carol");
  await register(carol, "carol");
  await waitForTransport(carol, "WebSocket");
  await waitForPresence(alice, "carol joined · 2 here");
  check(true, "alice is told that carol joined (bob, long polling, is not counted)");
  await say(carol, "hello over the socket");
  await waitForMessage(alice, "hello over the socket");
  await waitForMessage(bob, "hello over the socket");
  await say(alice, "socket to socket");
  await waitForMessage(carol, "socket to socket");
  await waitForMessage(alice, "socket to socket");
  const once = await countMessages(alice, "socket to socket");
  check(once === 1, `over the socket the sender sees its message once (${once})`);
  check(true, "two WebSocket contexts chat; the long-poll page sees it too");

  // An open socket drops: the page says so, reconnects with backoff and
  // catches up, through its cursor, on what was said meanwhile.
  await alice.evaluate(() => {
    socket.retrySleep = 2000;
    socket.ws.close();
  });
  await alice.waitForSelector("#status.warn:not([hidden])", { timeout: SEEN_WITHIN });
  await waitForTransport(alice, "reconnecting…");
  await say(bob, "said while alice was away");
  await waitForMessage(carol, "said while alice was away");
  check((await countMessages(alice, "said while alice was away")) === 0, "a dropped socket receives nothing");
  await waitForTransport(alice, "WebSocket", 10000);
  await waitForMessage(alice, "said while alice was away");
  await alice.waitForSelector("#status[hidden]", { state: "attached", timeout: SEEN_WITHIN });
  check((await countMessages(alice, "said while alice was away")) === 1, "alice reconnects and catches up, once");

  await carol.close();
  await waitForPresence(alice, "carol left · 1 here");
  check(true, "alice is told that carol left");
  await alice.screenshot({ path: join(outDir, "chat-websocket.png") });

  // A browser whose WebSocket never opens falls back to long polling.
  const daveContext = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await daveContext.addInitScript(() => {
    // A WebSocket that always fails to connect (a proxy refusing upgrades).
    window.WebSocket = class extends EventTarget {
      static OPEN = 1;
      constructor() {
        super();
        this.readyState = 3;
        setTimeout(() => this.onclose && this.onclose({ code: 1006 }), 50);
      }
      send() {
        throw new Error("not connected");
      }
      close() {}
    };
  });
  const dave = await newPage(daveContext, "dave");
  await register(dave, "dave");
  await waitForTransport(dave, "long polling");
  await say(alice, "reaches the fallback page");
  await waitForMessage(dave, "reaches the fallback page");
  await say(dave, "from the fallback page");
  await waitForMessage(alice, "from the fallback page");
  check(true, "a page whose socket never opens falls back to long polling and chats");

  await alice.goto(base + "/auth/logout");
  await alice.screenshot({ path: join(outDir, "login-desktop.png") });
  console.log("# screenshots in " + outDir);

  check(problems.length === 0, "no script errors: " + problems.join("; "));
  console.log("e2e: all checks passed");
} catch (e) {
  console.error("e2e FAILED: " + (e && e.stack ? e.stack : e));
  if (problems.length) console.error(problems.join("\n"));
  console.error(`# last console lines of the pages (now +${Date.now() - startedAt} ms):`);
  for (const line of recentConsole) console.error("#   " + line);
  process.exitCode = 1;
} finally {
  await browser.close();
}
