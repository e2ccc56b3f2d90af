//! `GET /chatsocket?room=<name>`: the chat over a WebSocket, in the same
//! rooms as the long-poll chat, with the same message objects.
//!
//! Mirrors `ChatSocketHandler` of Tornado's `demos/websocket/chatdemo.py`
//! (a set of waiters, `send_updates`, `on_message` parsing `{"body": ...}`),
//! with rooms, logins and presence added. The fan-out is not here: a frame
//! becomes [`Room::post_message`], which reaches the room's long-poll
//! waiters and its subscribers — every socket below is one — in one pass,
//! with the message serialized once ([`Message::json`](super::Message)) and
//! encoded as a WebSocket frame once ([`Message::ws_frame`](super::Message::ws_frame),
//! sent with [`WebSocket::write_prepared`]).
//!
//! # What goes over the socket
//!
//! | direction | frame (JSON text) | when |
//! |---|---|---|
//! | client → server | `{"body": "...", "ref": "..."}` (`ref` optional, other fields ignored) | to post a message |
//! | server → client | `{"id","from","body","html","time"}` | every message of the room (the long-poll objects, byte for byte) |
//! | server → client | `{"type":"sent","id":"<message id>","ref":"..."}` | after the sender's own message, only if it gave a `ref` |
//! | server → client | `{"type":"error","error":{"code":400\|413\|429\|503,"message":"..."}[,"ref"]}` | a frame that is not a postable message, or one over the post rate |
//! | server → client | `{"type":"join"\|"leave","user":"...","members":N}` | a user's first socket in the room opens / last one closes |
//!
//! Messages have no `"type"`; everything else has one and no `id`/`html`,
//! so a client that only knows messages (Tornado's demo `chat.js`: look up
//! `#m<id>`, insert `html`) does nothing with it. Notices go to the room's
//! WebSocket members only: long-poll answers carry messages and nothing
//! else, so Tornado's long-poll clients, and the cache, never see one.
//!
//! A binary frame closes the connection with 1003 (unsupported data); a
//! text frame that is not a postable message gets an error object and the
//! connection stays open. A frame over [`MAX_FRAME`] closes it with 1009.
//!
//! A user not yet in the room is refused with 429 (and `Retry-After`)
//! when it enters rooms faster than the post rate allows: its join and
//! leave notices are broadcasts, like posts (see `prepare`).
//!
//! Opening with `&cursor=<id>` (the id of the newest message the client
//! has) sends the messages it missed first, by the long-poll cursor rule;
//! without a cursor nothing is replayed (the page already shows the cache).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use serde_json::{json, Value};

use super::message_buffer::newest_within;
use super::post_limit::retry_after_secs;
use super::{Chat, PostLimiter, Room, Subscription, LOBBY};
use crate::apps::accounts::Accounts;
use crate::apps::site::{write_metric, Metrics};
use crate::apps::sparse::shrink_if_sparse;
use crate::ioloop::IterationClock;
use crate::web::{Application, Ctx, HTTPError, HandlerResult};
use crate::websocket::{
    Message, PreparedMessage, WebSocket, WebSocketHandler, WebSocketOptions, WebSocketRoute,
};

/// Largest frame a client may send: a 4 KiB body is at most 24 KiB as JSON
/// (`\u00XX` escapes), plus the fields Tornado's demo client adds.
pub const MAX_FRAME: usize = 64 * 1024;

/// Most bytes of missed messages replayed at open: half the write bound, so
/// a catch-up alone can never trip it. Older missed messages are skipped
/// (a reload shows them). The same budget as a long-poll answer.
pub const MAX_CATCH_UP_BYTES: usize = super::message_buffer::MAX_ANSWER_BYTES;

/// Longest `ref` echoed back; a longer one is ignored.
pub const MAX_REF: usize = 64;

/// Close code for a binary frame (RFC 6455 §7.4.1: "a type of data it
/// cannot accept").
const UNSUPPORTED_DATA: u16 = 1003;

/// Add `/chatsocket` to `app` (logged-in users only: 403 before the
/// handshake otherwise). Returns the handler, for its metrics.
pub fn mount(app: &mut Application, chat: &Chat, accounts: &Accounts) -> Rc<ChatSocket> {
    let socket = Rc::new(ChatSocket {
        chat: chat.clone(),
        accounts: accounts.clone(),
        members: RefCell::new(HashMap::new()),
        presence: RefCell::new(HashMap::new()),
        joins: RefCell::new(PostLimiter::new(chat.post_rate())),
    });
    app.route("/chatsocket", WebSocketRoute::new(Rc::clone(&socket)))
        .authenticated()
        .api();
    socket
}

/// The `/chatsocket` handler: one value for every connection (see
/// [`WebSocketHandler`]); per-connection state is keyed by the handle.
pub struct ChatSocket {
    /// The rooms (shared with the long-poll handlers).
    chat: Chat,
    /// To refuse a signed cookie whose account is gone.
    accounts: Accounts,
    /// Every open connection: its room and subscription. Dropping an entry
    /// unsubscribes it.
    members: RefCell<HashMap<WebSocket, Member>>,
    /// Per room name: its open sockets and how many each user has, for
    /// join/leave notices. A room's entry goes when its last socket does.
    presence: RefCell<HashMap<String, Presence>>,
    /// How often each user may enter a room (open a first socket there):
    /// the post rate, in a bucket of its own (see `prepare`).
    joins: RefCell<PostLimiter>,
}

/// One open `/chatsocket` connection.
struct Member {
    /// Where its frames are posted. (Its author name is the handle's
    /// `current_user()`, captured at the handshake: not copied here.)
    room: Room,
    /// Its place among the room's subscribers; unsubscribes on drop.
    _subscription: Subscription,
}

/// Who is in one room over WebSocket.
#[derive(Default)]
struct Presence {
    /// The sockets that get notices.
    sockets: HashSet<WebSocket>,
    /// Open sockets per user: a notice only for the first and the last, so
    /// a second tab or a reconnect says nothing.
    users: HashMap<String, usize>,
}

impl ChatSocket {
    /// Open `/chatsocket` connections.
    pub fn connection_count(&self) -> usize {
        self.members.borrow().len()
    }

    /// Distinct users present over WebSocket, summed over rooms.
    pub fn user_count(&self) -> usize {
        let presence = self.presence.borrow();
        presence.values().map(|p| p.users.len()).sum()
    }

    /// Add the WebSocket chat's gauges to `/metrics`.
    pub fn register_metrics(self: &Rc<Self>, metrics: &Metrics) {
        let socket = Rc::clone(self);
        metrics.register(move |out| {
            write_metric(
                out,
                "squall_chat_websockets",
                "gauge",
                "Open /chatsocket connections.",
                socket.connection_count(),
            );
            write_metric(
                out,
                "squall_chat_websocket_users",
                "gauge",
                "Users present in chat rooms over WebSocket (per room).",
                socket.user_count(),
            );
        });
    }

    /// The room named by `?room=` (default: the lobby).
    fn room_of(&self, name: Option<String>) -> Result<Room, super::RoomError> {
        self.chat.room(name.as_deref().unwrap_or(LOBBY))
    }

    /// Send `notice` (serialized once) to every socket in `room`.
    fn notify_room(&self, room: &str, notice: &Value) {
        let sockets: Vec<WebSocket> = match self.presence.borrow().get(room) {
            Some(p) => p.sockets.iter().cloned().collect(),
            None => return,
        };
        // No borrow held from here: writes may close a slow socket (its
        // on_close runs later, from the loop).
        let frame = PreparedMessage::json(notice);
        for ws in sockets {
            let _ = ws.write_prepared(&frame);
        }
    }

    /// Send the messages after `cursor` (newest first within the budget,
    /// then in order).
    fn catch_up(ws: &WebSocket, room: &Room, cursor: &str) {
        let missed = room.messages_since(Some(cursor));
        let first = newest_within(&missed, MAX_CATCH_UP_BYTES, |m| m.json.len());
        for message in &missed[first..] {
            let _ = ws.write_message(&message.json);
        }
    }
}

impl WebSocketHandler for ChatSocket {
    fn prepare(&self, cx: &Ctx) -> HandlerResult {
        self.accounts.require_known_user(cx, true)?;
        // A bad room name is a 404 now, not a socket that closes at once.
        let room = self.room_of(cx.get_argument_opt("room")?)?;
        // A user's first socket in a room is announced to everyone there,
        // and so is its close: two broadcasts per connection, like posts,
        // but a connection spent no post. Opening and closing sockets in a
        // loop made the room hear a join and a leave per handshake, past
        // the post limit (300 cycles against 500 members: 13.6 MB sent,
        // 1.5 s of the loop). So entering a room is limited at the post
        // rate too, in a bucket of its own (joining does not cost a post);
        // further sockets of a user already there are announced to nobody
        // and cost nothing.
        let user = cx.current_user().unwrap_or_default();
        let present = self
            .presence
            .borrow()
            .get(room.name())
            .is_some_and(|p| p.users.contains_key(user));
        if !present {
            let now = IterationClock::now();
            if let Err(wait) = self.joins.borrow_mut().take(user, now) {
                let secs = retry_after_secs(wait);
                return Err(
                    HTTPError::new(429, format!("joining too often: wait {secs} s"))
                        .with_header("Retry-After", secs.to_string()),
                );
            }
        }
        Ok(())
    }

    fn keep_request_header(&self, _name: &str) -> bool {
        // Everything the chat needs (user, room, cursor) is read at open
        // from what is captured anyway; the headers (cookies, user agent:
        // hundreds of bytes) would only sit with every idle socket.
        false
    }

    /// The application's pings (`websocket_ping_interval`, the site's
    /// `--ws-ping-interval`) stay: a peer silent for the ping timeout
    /// after a ping is dropped (1001), so a vanished browser leaves the
    /// room.
    /// Frames are capped at the chat's own bound.
    fn options(&self, inherited: WebSocketOptions) -> WebSocketOptions {
        WebSocketOptions {
            max_message_size: MAX_FRAME,
            ..inherited
        }
    }

    fn open(&self, ws: &WebSocket) {
        let (Some(user), Ok(room)) = (
            ws.current_user().map(str::to_owned),
            self.room_of(ws.get_query_argument("room")),
        ) else {
            // prepare checked both; only a room table filled up since.
            ws.close(1011, "room unavailable");
            return;
        };
        if let Some(cursor) = ws.get_query_argument("cursor") {
            ChatSocket::catch_up(ws, &room, &cursor);
        }
        let socket = ws.clone();
        let subscription = room.subscribe(move |message| {
            // The frame is encoded once per message and shared by the whole
            // room. A full write buffer closes this one socket; the room
            // goes on.
            let _ = socket.write_prepared(message.ws_frame());
        });
        let name = room.name().to_string();
        self.members.borrow_mut().insert(
            ws.clone(),
            Member {
                room,
                _subscription: subscription,
            },
        );
        let (first, members) = {
            let mut presence = self.presence.borrow_mut();
            let here = presence.entry(name.clone()).or_default();
            here.sockets.insert(ws.clone());
            let sockets = here.users.entry(user.clone()).or_insert(0);
            *sockets += 1;
            (*sockets == 1, here.users.len())
        };
        if first {
            let notice = json!({"type": "join", "user": user, "members": members});
            self.notify_room(&name, &notice);
        }
    }

    fn on_message(&self, ws: &WebSocket, message: Message) {
        let Message::Text(text) = message else {
            ws.close(UNSUPPORTED_DATA, "send JSON text frames");
            return;
        };
        let Some(room) = self.members.borrow().get(ws).map(|m| m.room.clone()) else {
            return;
        };
        let user = ws.current_user().unwrap_or_default();
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        let frame = parsed.as_ref().and_then(Value::as_object);
        let reference = frame
            .and_then(|f| f.get("ref"))
            .and_then(Value::as_str)
            .filter(|r| r.len() <= MAX_REF)
            .map(str::to_owned);
        let reply = match frame.map(|f| f.get("body")) {
            None => Err((
                400,
                "expected a JSON object like {\"body\": \"...\"}".into(),
            )),
            Some(None) => Err((400, "missing body".into())),
            Some(Some(Value::String(body))) => match room.post_message(user, body) {
                Ok(posted) => Ok(posted.id.clone()),
                Err(e) => Err((e.status(), e.to_string())),
            },
            Some(Some(_)) => Err((400, "body must be a string".into())),
        };
        let mut answer = match reply {
            // Posted: the message itself already went out to this socket
            // (it is a subscriber); an ack only if the client asked for one.
            Ok(_) if reference.is_none() => return,
            Ok(id) => json!({"type": "sent", "id": id}),
            Err((code, text)) => json!({"type": "error", "error": {"code": code, "message": text}}),
        };
        if let Some(reference) = reference {
            answer["ref"] = Value::String(reference);
        }
        let _ = ws.write_json(&answer);
    }

    fn on_close(&self, ws: &WebSocket, _code: u16, _reason: &str) {
        // Taken out first, dropped after the borrow ends (the subscription's
        // closure owns a socket handle).
        let Some(member) = self.members.borrow_mut().remove(ws) else {
            return;
        };
        shrink_if_sparse(&mut *self.members.borrow_mut());
        let name = member.room.name().to_string();
        let user = ws.current_user().unwrap_or_default();
        let last = {
            let mut presence = self.presence.borrow_mut();
            let Some(here) = presence.get_mut(&name) else {
                return;
            };
            here.sockets.remove(ws);
            shrink_if_sparse(&mut here.sockets);
            let last = match here.users.get_mut(user) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                _ => {
                    here.users.remove(user);
                    true
                }
            };
            let members = here.users.len();
            if here.sockets.is_empty() {
                presence.remove(&name);
            }
            last.then_some(members)
        };
        drop(member); // unsubscribes
        if let Some(members) = last {
            let notice = json!({"type": "leave", "user": user, "members": members});
            self.notify_room(&name, &notice);
        }
    }
}
