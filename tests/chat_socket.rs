//! The chat over `/chatsocket`, against the real `squall` binary: WebSocket
//! clients (the `tungstenite` crate, an independent implementation) and
//! long-poll clients in the same rooms, notices, bad frames, refusals, and
//! everything released when clients leave.

mod chat_support;

use std::net::TcpStream;
use std::time::Instant;

use chat_support::{read_response, Client, Server, GUARD};
use serde_json::{json, Value};
use tungstenite::client::IntoClientRequest;
use tungstenite::http::HeaderValue;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Error, Message};

type Ws = tungstenite::WebSocket<TcpStream>;

/// The upgrade request for `/chatsocket?<query>` with `c`'s cookies.
fn request(c: &Client, query: &str) -> tungstenite::handshake::client::Request {
    let url = format!("ws://{}/chatsocket?{query}", c.addr);
    let mut req = url.into_client_request().expect("request");
    let cookie: Vec<String> = c.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if !cookie.is_empty() {
        let value = HeaderValue::from_str(&cookie.join("; ")).expect("cookie header");
        req.headers_mut().insert("Cookie", value);
    }
    req
}

/// Open `/chatsocket?<query>` as `c`, or the status of the refusal.
fn try_open(c: &Client, query: &str, origin: Option<&str>) -> Result<Ws, u16> {
    let mut req = request(c, query);
    if let Some(origin) = origin {
        let value = HeaderValue::from_str(origin).expect("origin");
        req.headers_mut().insert("Origin", value);
    }
    let stream = TcpStream::connect(c.addr).expect("connect");
    stream.set_read_timeout(Some(GUARD)).expect("timeout");
    match tungstenite::client(req, stream) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(Error::Http(r))) => Err(r.status().as_u16()),
        Err(e) => panic!("{query}: {e}"),
    }
}

/// Open `/chatsocket?room=<room>` as `c`.
fn open(c: &Client, room: &str) -> Ws {
    try_open(c, &format!("room={room}"), None).expect("handshake")
}

/// The status of a refused handshake.
fn refused(c: &Client, query: &str, origin: Option<&str>) -> u16 {
    match try_open(c, query, origin) {
        Err(status) => status,
        Ok(_) => panic!("{query}: the handshake succeeded"),
    }
}

/// The next text frame, raw (pings are answered by tungstenite and skipped,
/// for at most the guard time: the server pings every 30 s).
fn next_text(ws: &mut Ws) -> String {
    let deadline = Instant::now() + GUARD;
    loop {
        assert!(Instant::now() < deadline, "no text frame within {GUARD:?}");
        match ws.read().expect("read a frame (timed out?)") {
            Message::Text(t) => return t.to_string(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// The next text frame as JSON.
fn next_json(ws: &mut Ws) -> Value {
    let text = next_text(ws);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn send(ws: &mut Ws, frame: &Value) {
    ws.send(Message::text(frame.to_string())).expect("send");
}

/// Close as a browser does: Close frame, the server's answer, then EOF.
fn close(mut ws: Ws) {
    ws.close(None).expect("close");
    loop {
        match ws.read() {
            Ok(_) => continue,
            Err(Error::ConnectionClosed) => return,
            Err(e) => panic!("closing: {e}"),
        }
    }
}

/// The Close code the server sends next (data frames before it skipped).
fn close_code(ws: &mut Ws) -> u16 {
    loop {
        match ws.read().expect("read until the Close") {
            Message::Close(frame) => return frame.map_or(1005, |f| u16::from(f.code)),
            _ => continue,
        }
    }
}

/// A message object of the contract: exactly these keys.
fn assert_message(v: &Value, from: &str, body: &str) {
    let mut keys: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["body", "from", "html", "id", "time"], "{v}");
    assert_eq!(
        (v["from"].as_str(), v["body"].as_str()),
        (Some(from), Some(body))
    );
}

#[test]
fn websocket_and_long_poll_members_see_the_same_messages() {
    let server = Server::start(&[]);
    let alice = Client::user(&server, "alice");
    let mut bob = Client::user(&server, "bob");
    let mut ws = open(&alice, "mix");
    assert_eq!(
        next_json(&mut ws),
        json!({"type": "join", "user": "alice", "members": 1})
    );

    // WebSocket → long poll: byte-identical message objects.
    let mut poll = bob.start_post("/a/message/updates", &[("room", "mix")]);
    server.wait_metric("squall_chat_waiters", 1.0);
    send(&mut ws, &json!({"body": "from the socket <b>"}));
    let pushed = next_text(&mut ws);
    assert_message(
        &serde_json::from_str(&pushed).expect("json"),
        "alice",
        "from the socket <b>",
    );
    let answer = read_response(&mut poll);
    assert_eq!(answer.text(), format!("{{\"messages\":[{pushed}]}}"));

    // Long poll → WebSocket: the POST's answer is the frame.
    let posted = bob.post("/a/message/new", &[("body", "from HTTP"), ("room", "mix")]);
    assert_eq!(posted.status, 200);
    assert_eq!(next_text(&mut ws), posted.text());
    assert_message(&posted.json(), "bob", "from HTTP");

    // Both are in the room's cache, for the next page load.
    let page = bob.get("/room/mix").text();
    let id = posted.json()["id"].as_str().expect("id").to_string();
    let first: Value = serde_json::from_str(&pushed).expect("json");
    assert!(page.contains(&format!("id=\"m{id}\"")));
    assert!(page.contains(&format!("id=\"m{}\"", first["id"].as_str().expect("id"))));
    close(ws);
}

#[test]
fn rooms_are_isolated_over_websocket() {
    let server = Server::start(&[]);
    let alice = Client::user(&server, "alice");
    let bob = Client::user(&server, "bob");
    let carol = Client::user(&server, "carol");
    let mut a = open(&alice, "red");
    let mut b = open(&bob, "blue");
    assert_eq!(next_json(&mut a)["user"], "alice");
    assert_eq!(next_json(&mut b)["user"], "bob");
    let mut c = open(&carol, "red");
    assert_eq!(next_json(&mut a)["user"], "carol");
    assert_eq!(next_json(&mut c)["user"], "carol");

    send(&mut a, &json!({"body": "red only"}));
    assert_message(&next_json(&mut a), "alice", "red only");
    assert_message(&next_json(&mut c), "alice", "red only");
    // Bob's next frame is blue's own message: nothing from red came first
    // (frames of one socket arrive in order).
    send(&mut b, &json!({"body": "blue only"}));
    assert_message(&next_json(&mut b), "bob", "blue only");
    send(&mut c, &json!({"body": "red again"}));
    assert_message(&next_json(&mut a), "carol", "red again");
    for ws in [a, b, c] {
        close(ws);
    }
}

#[test]
fn the_handshake_is_guarded_like_the_chat_api() {
    let server = Server::start(&[]);
    let anonymous = server.client();
    assert_eq!(refused(&anonymous, "room=lobby", None), 403);
    let alice = Client::user(&server, "alice");
    assert_eq!(refused(&alice, "room=Bad%20Name", None), 404);
    let evil = Some("http://evil.example");
    assert_eq!(refused(&alice, "room=lobby", evil), 403);
    // A signed cookie for an account this (memory-only) server never had.
    let mut stranger = Client::user(&Server::start(&[]), "stranger");
    stranger.addr = server.addr;
    assert_eq!(refused(&stranger, "room=lobby", None), 403);
    // The same origin opens; no room means the lobby.
    let origin = format!("http://{}", server.addr);
    let mut ws = try_open(&alice, "", Some(&origin)).expect("same origin opens");
    assert_eq!(next_json(&mut ws)["type"], "join");
    send(&mut ws, &json!({"body": "in the lobby"}));
    let message = next_json(&mut ws);
    let mut poller = alice.clone();
    let lobby = poller.post("/a/message/updates", &[("room", "lobby")]);
    assert_eq!(lobby.json()["messages"][0]["id"], message["id"]);
    close(ws);
}

#[test]
fn bad_frames_get_an_error_and_the_socket_stays_open() {
    let server = Server::start(&[]);
    let alice = Client::user(&server, "alice");
    let mut ws = open(&alice, "errs");
    next_json(&mut ws); // join
    let error = |code: u64, message: &str| json!({"type": "error", "error": {"code": code, "message": message}});
    let object = "expected a JSON object like {\"body\": \"...\"}";
    for (frame, expected) in [
        ("not json".to_string(), error(400, object)),
        ("[1, 2]".to_string(), error(400, object)),
        (
            json!({"text": "hi"}).to_string(),
            error(400, "missing body"),
        ),
        (
            json!({"body": 5}).to_string(),
            error(400, "body must be a string"),
        ),
        (
            json!({"body": "  \n "}).to_string(),
            error(400, "the message is empty"),
        ),
        (
            json!({"body": "x".repeat(4097)}).to_string(),
            error(413, "the message is longer than 4096 bytes"),
        ),
    ] {
        ws.send(Message::text(frame.clone())).expect("send");
        assert_eq!(next_json(&mut ws), expected, "for {frame}");
    }
    // A `ref` comes back on errors, and asks for an ack of a posted message.
    send(&mut ws, &json!({"body": "", "ref": "r1"}));
    assert_eq!(next_json(&mut ws)["ref"], "r1");
    send(
        &mut ws,
        &json!({"body": "fine", "ref": "r2", "_xsrf": "ignored"}),
    );
    let message = next_json(&mut ws);
    assert_message(&message, "alice", "fine");
    assert_eq!(
        next_json(&mut ws),
        json!({"type": "sent", "id": message["id"], "ref": "r2"})
    );
    // Still open; nothing refused was posted.
    let mut poller = alice.clone();
    let all = poller.post("/a/message/updates", &[("room", "errs")]);
    assert_eq!(all.message_ids(), [message["id"].as_str().expect("id")]);

    // A binary frame: 1003, unsupported data.
    ws.send(Message::binary(vec![1, 2, 3])).expect("send");
    assert_eq!(close_code(&mut ws), u16::from(CloseCode::Unsupported));
    drop(ws);
    server.wait_metric("squall_chat_websockets", 0.0);
    // A frame over 64 KiB: 1009.
    let mut big = open(&alice, "errs");
    assert_eq!(next_json(&mut big)["type"], "join");
    big.send(Message::text("x".repeat(64 * 1024 + 1)))
        .expect("send");
    assert_eq!(close_code(&mut big), u16::from(CloseCode::Size));
    server.wait_metric("squall_chat_websockets", 0.0);
}

#[test]
fn the_post_rate_spans_both_transports_and_a_refusal_keeps_the_socket() {
    // Two posts at once, then one per 1000 s: the test never sees a refill.
    let server = Server::start(&["--chat-post-rate", "0.001", "--chat-post-burst", "2"]);
    let mut alice = Client::user(&server, "alice");
    let mut ws = open(&alice, "rate");
    next_json(&mut ws); // join
                        // One post over HTTP, one over the socket: the bucket is the user's.
    let r = alice.post("/a/message/new", &[("body", "by http"), ("room", "rate")]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_message(&next_json(&mut ws), "alice", "by http");
    send(&mut ws, &json!({"body": "by socket"}));
    assert_message(&next_json(&mut ws), "alice", "by socket");
    send(&mut ws, &json!({"body": "one too many", "ref": "r3"}));
    let refused = next_json(&mut ws);
    assert_eq!(refused["ref"], "r3");
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["error"]["code"], 429);
    let text = refused["error"]["message"].as_str().expect("message");
    assert!(text.starts_with("too many messages: wait "), "{text}");
    // The socket stays open and still receives: another user's post.
    let mut bob = Client::user(&server, "bob");
    let r = bob.post("/a/message/new", &[("body", "from bob"), ("room", "rate")]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_message(&next_json(&mut ws), "bob", "from bob");
    close(ws);
}

#[test]
fn join_and_leave_notices_reach_websocket_members_only() {
    let server = Server::start(&[]);
    let alice = Client::user(&server, "alice");
    let bob = Client::user(&server, "bob");
    let carol = Client::user(&server, "carol");
    let mut a = open(&alice, "hall");
    assert_eq!(
        next_json(&mut a),
        json!({"type": "join", "user": "alice", "members": 1})
    );
    // A long-poll member parks; it will not hear of joins and leaves.
    let mut poll = carol.start_post("/a/message/updates", &[("room", "hall")]);
    server.wait_metric("squall_chat_waiters", 1.0);

    let mut b = open(&bob, "hall");
    let bob_joined = json!({"type": "join", "user": "bob", "members": 2});
    assert_eq!(next_json(&mut a), bob_joined);
    assert_eq!(next_json(&mut b), bob_joined);
    // Alice's second tab: no notice (she is already here); it gets bob's leave.
    let mut a2 = open(&alice, "hall");
    close(b);
    let bob_left = json!({"type": "leave", "user": "bob", "members": 1});
    assert_eq!(next_json(&mut a), bob_left);
    assert_eq!(next_json(&mut a2), bob_left);
    // Closing one of alice's two tabs says nothing either: the next frame
    // the other sees is a message.
    close(a2);
    server.wait_metric("squall_chat_websockets", 1.0);
    send(&mut a, &json!({"body": "still here"}));
    let message = next_json(&mut a);
    assert_message(&message, "alice", "still here");
    // The long poll got that message and nothing else.
    let answer = read_response(&mut poll);
    assert_eq!(answer.message_ids(), [message["id"].as_str().expect("id")]);
    assert_eq!(answer.json()["messages"].as_array().map(Vec::len), Some(1));
    close(a);
}

#[test]
fn a_reconnecting_socket_catches_up_from_its_cursor() {
    let server = Server::start(&[]);
    let mut alice = Client::user(&server, "alice");
    let ids: Vec<String> = (1..=3)
        .map(|i| {
            let r = alice.post(
                "/a/message/new",
                &[("body", &format!("m{i}")), ("room", "cu")],
            );
            r.json()["id"].as_str().expect("id").to_string()
        })
        .collect();
    let mut ws = try_open(&alice, &format!("room=cu&cursor={}", ids[0]), None).expect("open");
    assert_eq!(next_json(&mut ws)["id"].as_str(), Some(ids[1].as_str()));
    assert_eq!(next_json(&mut ws)["id"].as_str(), Some(ids[2].as_str()));
    assert_eq!(next_json(&mut ws)["type"], "join");
    close(ws);
    // Without a cursor nothing is replayed (the page already has the cache).
    let mut ws = open(&alice, "cu");
    assert_eq!(next_json(&mut ws)["type"], "join");
    close(ws);
}

#[test]
fn everything_is_released_when_members_leave() {
    let server = Server::start(&[]);
    let alice = Client::user(&server, "alice");
    let bob = Client::user(&server, "bob");
    let mut sockets: Vec<Ws> = (0..10)
        .map(|i| {
            open(
                if i % 2 == 0 { &alice } else { &bob },
                &format!("r{}", i % 3),
            )
        })
        .collect();
    server.wait_metric("squall_chat_websockets", 10.0);
    assert_eq!(server.metric("squall_chat_subscribers"), 10.0);
    // alice and bob in r0, r1, r2 each: 6 (room, user) pairs.
    assert_eq!(server.metric("squall_chat_websocket_users"), 6.0);
    // Half close politely, half just vanish (EOF, no Close frame).
    let vanished = sockets.split_off(5);
    for ws in sockets {
        close(ws);
    }
    drop(vanished);
    server.wait_metric("squall_chat_websockets", 0.0);
    server.wait_metric("squall_chat_subscribers", 0.0);
    server.wait_metric("squall_chat_websocket_users", 0.0);
    server.wait_metric("squall_websocket_connections", 0.0);
}

/// Probe: one user opening and closing `/chatsocket` in a loop made every
/// member hear a join and a leave per handshake, past the post limit (300
/// cycles in a room of 500: 13.6 MB sent, 1.5 s of the server's loop).
/// Entering a room is now limited at the post rate, in a bucket of its
/// own; a user already in the room opens more sockets freely.
#[test]
fn entering_a_room_over_and_over_is_limited_like_posting() {
    // Three entries at once, then one per 1000 s: the test sees no refill.
    let server = Server::start(&["--chat-post-rate", "0.001", "--chat-post-burst", "3"]);
    let alice = Client::user(&server, "alice");
    let mut bob = Client::user(&server, "bob");
    let mut listener = open(&bob, "door");
    assert_eq!(next_json(&mut listener)["type"], "join");
    // Alice walks in and out until she is turned away (bounded).
    let mut entered = 0;
    let status = loop {
        assert!(entered < 20, "entered {entered} times, never refused");
        match try_open(&alice, "room=door", None) {
            Ok(ws) => {
                entered += 1;
                close(ws);
            }
            Err(status) => break status,
        }
    };
    assert_eq!((entered, status), (3, 429));
    // Bob, already in the room, opens more tabs than his bucket holds
    // (two entries left): they announce nothing and cost nothing.
    let tabs: Vec<Ws> = (0..4).map(|_| open(&bob, "door")).collect();
    // Joining does not cost a post: bob still posts.
    server.wait_metric("squall_chat_websocket_users", 1.0);
    let r = bob.post(
        "/a/message/new",
        &[("body", "who was here?"), ("room", "door")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // The listener heard each of alice's three visits, then the message.
    let mut notices = Vec::new();
    let message = loop {
        let frame = next_json(&mut listener);
        if frame.get("type").is_none() {
            break frame;
        }
        notices.push(frame);
    };
    assert_message(&message, "bob", "who was here?");
    let visit = [
        json!({"type": "join", "user": "alice", "members": 2}),
        json!({"type": "leave", "user": "alice", "members": 1}),
    ];
    let three_visits: Vec<Value> = (0..3).flat_map(|_| visit.clone()).collect();
    assert_eq!(notices, three_visits);
    for tab in tabs {
        close(tab);
    }
    close(listener);
}
