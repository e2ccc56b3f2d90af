//! The chat's HTTP API over real sockets, against the real `squall` binary:
//! rooms, cursors, waiters, fan-out, bad input, XSRF and login refusals.

mod chat_support;

use chat_support::{read_response, Client, Server};

/// Post `body` in `room` as `c`; the new message's id.
fn post(c: &mut Client, room: &str, body: &str) -> String {
    let r = c.post("/a/message/new", &[("body", body), ("room", room)]);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["id"].as_str().expect("id").to_string()
}

#[test]
fn rooms_are_isolated() {
    let server = Server::start(&[]);
    let mut alice = Client::user(&server, "alice");
    let mut bob = Client::user(&server, "bob");
    // Both wait in their own (empty) room.
    let mut alice_wait = alice.start_post("/a/message/updates", &[("room", "red")]);
    let mut bob_wait = bob.start_post("/a/message/updates", &[("room", "blue")]);
    server.wait_metric("squall_chat_waiters", 2.0);

    let in_red = post(&mut alice, "red", "for red only");
    let got = read_response(&mut alice_wait);
    assert_eq!(got.message_ids(), std::slice::from_ref(&in_red));
    assert_eq!(got.json()["messages"][0]["from"], "alice");
    // Bob is still waiting: the red message did not reach the blue room.
    server.wait_metric("squall_chat_waiters", 1.0);
    let in_blue = post(&mut bob, "blue", "for blue only");
    assert_eq!(
        read_response(&mut bob_wait).message_ids(),
        std::slice::from_ref(&in_blue)
    );

    // Catching up without a cursor: each room has only its own message.
    let r = bob.post("/a/message/updates", &[("room", "blue")]);
    assert_eq!(r.message_ids(), std::slice::from_ref(&in_blue));
    let page = bob.get("/room/blue").text();
    assert!(page.contains(&format!("id=\"m{in_blue}\"")));
    assert!(!page.contains(&in_red));
    assert!(!bob.get("/room/red").text().contains(&in_blue));
}

#[test]
fn cursor_catch_up_and_wait() {
    let server = Server::start(&[]);
    let mut c = Client::user(&server, "carol");
    let ids: Vec<String> = (1..=3)
        .map(|i| post(&mut c, "cur", &format!("m{i}")))
        .collect();

    // Missed two messages: both come at once, oldest first.
    let r = c.post(
        "/a/message/updates",
        &[("room", "cur"), ("cursor", &ids[0])],
    );
    assert_eq!(r.message_ids(), ids[1..]);

    // Up to date: the request waits for the next message.
    let mut waiting = c.start_post(
        "/a/message/updates",
        &[("room", "cur"), ("cursor", &ids[2])],
    );
    server.wait_metric("squall_chat_waiters", 1.0);
    let m4 = post(&mut c, "cur", "m4");
    assert_eq!(
        read_response(&mut waiting).message_ids(),
        std::slice::from_ref(&m4)
    );
    server.wait_metric("squall_chat_waiters", 0.0);

    // The default room is the lobby (Tornado's chat.js sends no room).
    let lobby = post(&mut c, "lobby", "hello lobby");
    let r = c.post("/a/message/updates", &[]);
    assert_eq!(r.message_ids(), [lobby]);
}

#[test]
fn unknown_or_missing_cursor_gets_the_whole_cache() {
    let server = Server::start(&[]);
    let mut c = Client::user(&server, "dave");
    let ids: Vec<String> = (1..=3)
        .map(|i| post(&mut c, "u", &format!("m{i}")))
        .collect();
    for fields in [
        &[("room", "u"), ("cursor", "not-a-message-id")][..],
        &[("room", "u")][..],
    ] {
        let r = c.post("/a/message/updates", fields);
        assert_eq!(r.status, 200);
        assert_eq!(r.message_ids(), ids);
    }
}

#[test]
fn cache_keeps_the_last_200() {
    // 205 posts back to back from one user: no post rate limit.
    let server = Server::start(&["--chat-post-rate", "0"]);
    let mut c = Client::user(&server, "erin");
    let ids: Vec<String> = (0..205)
        .map(|i| post(&mut c, "big", &format!("m{i}")))
        .collect();
    let r = c.post(
        "/a/message/updates",
        &[("room", "big"), ("cursor", &ids[0])],
    );
    // ids[0] was evicted: unknown cursor, so the whole cache — the last 200.
    assert_eq!(r.message_ids(), ids[5..]);
    let r = c.post(
        "/a/message/updates",
        &[("room", "big"), ("cursor", &ids[200])],
    );
    assert_eq!(r.message_ids(), ids[201..]);
}

#[test]
fn disconnect_cancels_the_waiter() {
    let server = Server::start(&[]);
    let c = Client::user(&server, "frank");
    let waiting = c.start_post("/a/message/updates", &[("room", "gone")]);
    let waiting2 = c.start_post("/a/message/updates", &[("room", "gone")]);
    server.wait_metric("squall_chat_waiters", 2.0);
    drop(waiting);
    server.wait_metric("squall_chat_waiters", 1.0);
    drop(waiting2);
    server.wait_metric("squall_chat_waiters", 0.0);
    // And the server still answers normally afterwards.
    let mut c = c;
    post(&mut c, "gone", "still here");
}

#[test]
fn a_thousand_waiters_all_receive_one_message() {
    const N: usize = 1000;
    let server = Server::start(&[]);
    let mut c = Client::user(&server, "grace");
    let seed = post(&mut c, "fan", "seed");
    let mut waiters: Vec<_> = (0..N)
        .map(|_| c.start_post("/a/message/updates", &[("room", "fan"), ("cursor", &seed)]))
        .collect();
    server.wait_metric("squall_chat_waiters", N as f64);
    let id = post(&mut c, "fan", "to everyone");
    let mut bodies = std::collections::HashSet::new();
    for w in &mut waiters {
        let r = read_response(w);
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("Content-Type"),
            Some("application/json; charset=UTF-8")
        );
        assert_eq!(r.message_ids(), std::slice::from_ref(&id));
        bodies.insert(r.body);
    }
    // Built once: every waiter got the very same bytes.
    assert_eq!(bodies.len(), 1);
    server.wait_metric("squall_chat_waiters", 0.0);
    assert_eq!(server.metric("squall_chat_messages_total"), 2.0);
}

#[test]
fn bad_input_is_refused_clearly() {
    let server = Server::start(&[]);
    let mut c = Client::user(&server, "heidi");
    let r = c.post("/a/message/new", &[("body", "   "), ("room", "x")]);
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]["message"]
        .as_str()
        .expect("message")
        .contains("empty"));
    let r = c.post("/a/message/new", &[("room", "x")]);
    assert_eq!(r.status, 400);

    let long = "x".repeat(4097);
    let r = c.post("/a/message/new", &[("body", &long), ("room", "x")]);
    assert_eq!(r.status, 413);
    assert!(r.json()["error"]["message"]
        .as_str()
        .expect("message")
        .contains("4096"));
    // Exactly the limit is fine (and counted in bytes: é is two).
    post(&mut c, "x", &"x".repeat(4096));
    let r = c.post(
        "/a/message/new",
        &[("body", &"é".repeat(2049)), ("room", "x")],
    );
    assert_eq!(r.status, 413);

    // HTML is text: escaped in the rendered html and on the page.
    let r = c.post(
        "/a/message/new",
        &[("body", "<script>alert(1)</script>"), ("room", "x")],
    );
    let m = r.json();
    assert_eq!(m["body"], "<script>alert(1)</script>");
    let html = m["html"].as_str().expect("html");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!html.contains("<script>"));
    let page = c.get("/room/x").text();
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!page.contains("<script>alert"));

    // Bad room names: 404 with a reason, page and API alike.
    for bad in ["Upper", "a%20b", &"y".repeat(33)] {
        let r = c.get(&format!("/room/{bad}"));
        assert_eq!(r.status, 404, "/room/{bad}");
        assert!(r.text().contains("room names are 1 to 32"));
    }
    let r = c.post("/a/message/new", &[("body", "hi"), ("room", "no/pe")]);
    assert_eq!(r.status, 404);
    assert!(r.json()["error"]["message"].is_string());
    let r = c.post("/a/message/updates", &[("room", "")]);
    assert_eq!(r.status, 404);
}

#[test]
fn xsrf_and_login_are_required() {
    let server = Server::start(&[]);
    let mut ivan = Client::user(&server, "ivan");

    // XSRF: missing or wrong → 403, nothing posted.
    let r = ivan.post_raw("/a/message/new", &[("body", "no token"), ("room", "x")]);
    assert_eq!(r.status, 403);
    let r = ivan.post(
        "/a/message/new",
        &[
            ("body", "bad token"),
            ("room", "x"),
            ("_xsrf", "2|00|00|00"),
        ],
    );
    assert_eq!(r.status, 403);
    let r = ivan.post_raw("/a/message/updates", &[("room", "x")]);
    assert_eq!(r.status, 403);
    assert_eq!(server.metric("squall_chat_messages_total"), 0.0);

    // No user: the API answers 403, pages redirect to the login page.
    let mut anon = server.client();
    anon.xsrf();
    let r = anon.post("/a/message/new", &[("body", "hi")]);
    assert_eq!(r.status, 403);
    let r = anon.post("/a/message/updates", &[]);
    assert_eq!(r.status, 403);
    let r = anon.get("/room/x?a=1");
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("Location"),
        Some("/auth/login?next=%2Froom%2Fx%3Fa%3D1"),
        "form-encoded as Tornado's urlencode does"
    );
    assert_eq!(
        anon.get("/").header("Location"),
        Some("/auth/login?next=%2F")
    );

    // A forged user cookie is no user.
    let mut forged = anon.clone();
    forged.cookies.insert("user".into(), "ivan".into());
    assert_eq!(forged.post("/a/message/new", &[("body", "hi")]).status, 403);

    // A signed cookie for an account that does not exist (a memory-only
    // server restarted with the same secret): refused too.
    let cookie = ivan.cookies["user"].clone();
    let xsrf = ivan.cookies["_xsrf"].clone();
    drop(server);
    let server = Server::start(&[]);
    let mut ghost = server.client();
    ghost.cookies.insert("user".into(), cookie);
    ghost.cookies.insert("_xsrf".into(), xsrf);
    assert_eq!(ghost.post("/a/message/new", &[("body", "boo")]).status, 403);
    let r = ghost.get("/");
    assert_eq!(r.status, 302);
    assert!(
        !ghost.cookies.contains_key("user"),
        "the stale cookie is cleared"
    );
}

#[test]
fn next_is_followed_only_when_local() {
    let server = Server::start(&[]);
    let mut c = Client::user(&server, "judy");
    let r = c.post(
        "/a/message/new",
        &[("body", "a"), ("room", "r"), ("next", "/room/r")],
    );
    assert_eq!((r.status, r.header("Location")), (302, Some("/room/r")));
    for evil in [
        "//evil.example",
        "https://evil.example/",
        "/\\evil.example",
        "evil",
    ] {
        let r = c.post(
            "/a/message/new",
            &[("body", "b"), ("room", "r"), ("next", evil)],
        );
        assert_eq!((r.status, r.header("Location")), (302, Some("/")), "{evil}");
    }
    // The same rule after logging in.
    let mut other = server.client();
    other.xsrf();
    for (next, expect) in [
        ("/room/r", "/room/r"),
        ("//evil.example", "/"),
        ("http://x", "/"),
    ] {
        other.cookies.remove("user");
        let r = other.post(
            "/auth/login",
            &[
                ("name", "judy"),
                ("password", "password-123"),
                ("next", next),
            ],
        );
        assert_eq!(
            (r.status, r.header("Location")),
            (302, Some(expect)),
            "{next}"
        );
    }
}

#[test]
fn the_go_to_room_form_redirects() {
    let server = Server::start(&[]);
    let mut c = Client::user(&server, "kim");
    for (name, location) in [
        ("General", "/room/general"),
        ("lobby", "/"),
        ("a-b_1", "/room/a-b_1"),
    ] {
        let r = c.get(&format!("/room?name={name}"));
        assert_eq!(
            (r.status, r.header("Location")),
            (302, Some(location)),
            "{name}"
        );
    }
    assert_eq!(c.get("/room?name=no%20spaces").status, 404);
    assert_eq!(c.get("/room").status, 400);
    // The page of a room made this way lists it in the sidebar.
    let page = c.get("/room/general").text();
    assert!(page.contains("href=\"/room/general\""));
    assert!(page.contains("data-room=\"general\""));
}

#[test]
fn posting_faster_than_the_rate_is_429_with_retry_after() {
    // Two posts at once, then one per 1000 s: the test never sees a refill.
    let server = Server::start(&["--chat-post-rate", "0.001", "--chat-post-burst", "2"]);
    let mut ann = Client::user(&server, "ann");
    let mut bob = Client::user(&server, "bob");
    // A refused body spends nothing.
    let r = ann.post("/a/message/new", &[("body", " "), ("room", "fast")]);
    assert_eq!(r.status, 400);
    let first = post(&mut ann, "fast", "one");
    post(&mut ann, "fast", "two");
    let r = ann.post("/a/message/new", &[("body", "three"), ("room", "fast")]);
    assert_eq!(r.status, 429, "{}", r.text());
    let wait: u64 = r
        .header("Retry-After")
        .expect("Retry-After")
        .parse()
        .expect("whole seconds");
    assert!((999..=1000).contains(&wait), "Retry-After: {wait}");
    assert_eq!(
        r.json()["error"]["message"],
        format!("too many messages: wait {wait} s before posting again")
    );
    assert_eq!(server.metric("squall_chat_posts_refused_total"), 1.0);
    // The limit is per user, and nothing refused reached the room.
    post(&mut bob, "fast", "bob's");
    let r = bob.post(
        "/a/message/updates",
        &[("room", "fast"), ("cursor", &first)],
    );
    let answer = r.json();
    let bodies: Vec<&str> = answer["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["body"].as_str())
        .collect();
    assert_eq!(bodies, ["two", "bob's"]);
}
