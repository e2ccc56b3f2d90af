// End-to-end test of the shopping cart in real headless Chromium: the
// count a second browser shows follows the first one's clicks live, over
// the WebSocket (/cart/socket) and over long polling (?transport=longpoll).
//
//   node cart.mjs <base-url> <output-dir>
//
// Run by tests/cart_browser.rs against a fresh server. Exits non-zero on the
// first failed check; saves screenshots to <output-dir>.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const [base, outDir] = process.argv.slice(2);
if (!base || !outDir) {
  console.error("usage: node cart.mjs <base-url> <output-dir>");
  process.exit(2);
}
mkdirSync(outDir, { recursive: true });

const SEEN_WITHIN = 5000;
const problems = [];

function check(ok, what) {
  if (!ok) throw new Error("check failed: " + what);
  console.log("ok - " + what);
}

/** A fresh browser context (its own cookies) on the cart page. */
async function openCart(browser, who, query = "") {
  const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => problems.push(`${who}: page error: ${e.message}`));
  page.on("console", (m) => {
    // Chromium asks for /favicon.ico by itself (the page has none: 404).
    if (m.type() === "error" && !m.location().url.endsWith("/favicon.ico")) {
      problems.push(`${who}: console error: ${m.text()} (${m.location().url})`);
    }
  });
  await page.goto(base + "/cart" + query);
  return page;
}

async function waitForText(page, selector, text, timeout = SEEN_WITHIN) {
  await page.waitForFunction(
    ([s, t]) => document.querySelector(s).textContent === t,
    [selector, text],
    { timeout },
  );
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
});

try {
  const first = await openCart(browser, "first");
  const second = await openCart(browser, "second");
  const polling = await openCart(browser, "polling", "?transport=longpoll");
  await waitForText(first, "#transport", "WebSocket");
  await waitForText(second, "#transport", "WebSocket");
  check(true, "both pages get live updates over the WebSocket");
  await waitForText(polling, "#transport", "long polling");
  check(true, "the ?transport=longpoll page long-polls");
  check((await second.textContent("#count")) === "10", "10 in stock at start");

  const started = Date.now();
  await first.click("#add-button");
  await waitForText(second, "#count", "9");
  console.log(`# the second page showed 9 after ${Date.now() - started} ms`);
  check(true, "the second context's count drops to 9 live when the first adds the book");
  await waitForText(polling, "#count", "9");
  check(true, "the long-polling page follows too");
  await waitForText(first, "#add-button", "Remove from cart");
  check(true, "the first page's button now removes");
  await second.screenshot({ path: join(outDir, "cart-second.png") });

  await first.click("#add-button");
  await waitForText(second, "#count", "10");
  await waitForText(polling, "#count", "10");
  check(true, "removing brings both back to 10");

  // The polling page adds too: the WebSocket pages hear of it.
  await polling.click("#add-button");
  await waitForText(first, "#count", "9");
  await waitForText(second, "#count", "9");
  check(true, "a change from the long-polling page reaches the WebSocket pages");
  await first.screenshot({ path: join(outDir, "cart-first.png") });

  check(problems.length === 0, "no script errors: " + problems.join("; "));
  console.log("e2e: all checks passed");
} catch (e) {
  console.error("e2e FAILED: " + (e && e.stack ? e.stack : e));
  if (problems.length) console.error(problems.join("\n"));
  process.exitCode = 1;
} finally {
  await browser.close();
}
