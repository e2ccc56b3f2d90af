//! End to end in real headless Chromium: three browser contexts on the
//! cart page — two over the WebSocket, one long polling — see the count
//! change live when any of them adds or removes the book. Drives
//! `node tests/e2e/cart.mjs` against the real `squall` binary. Screenshots
//! land in `<target>/tmp/cart-e2e/`.

mod browser_support;
mod chat_support;

use chat_support::Server;

#[test]
fn the_count_updates_live_in_every_browser() {
    if !browser_support::available() {
        return;
    }
    let out = browser_support::out_dir("cart-e2e");
    let server = Server::start(&[]);
    browser_support::run_script("cart.mjs", server.addr, &out);
    for shot in ["cart-first.png", "cart-second.png"] {
        assert!(out.join(shot).exists(), "no screenshot {shot}");
    }
    println!("screenshots: {}", out.display());
}
