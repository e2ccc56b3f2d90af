//! End to end in real headless Chromium: two browser contexts register and
//! chat in the lobby — one over the WebSocket, one long polling
//! (`?transport=longpoll`) — and do not see another room's messages; a
//! third context chats over the WebSocket (join/leave notices, a dropped
//! socket reconnects and catches up); a browser whose WebSocket never opens
//! falls back to long polling; the long-poll client recovers from errors by
//! itself. Drives `node tests/e2e/chat.mjs` against the real `squall`
//! binary. Screenshots land in `<target>/tmp/chat-e2e/`.

mod browser_support;
mod chat_support;

use chat_support::Server;

#[test]
fn users_chat_over_websocket_and_long_polling_in_chromium() {
    if !browser_support::available() {
        return;
    }
    let out = browser_support::out_dir("chat-e2e");
    let server = Server::start(&[]);
    browser_support::run_script("chat.mjs", server.addr, &out);
    for shot in [
        "chat-desktop.png",
        "chat-phone.png",
        "chat-websocket.png",
        "login-desktop.png",
    ] {
        assert!(out.join(shot).exists(), "no screenshot {shot}");
    }
    println!("screenshots: {}", out.display());
}
