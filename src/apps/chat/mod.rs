//! The long-polling chat with rooms: Tornado's `demos/chat` rebuilt on
//! squall's callback-style web layer, plus rooms and accounts.
//!
//! | file                 | what it holds                                     | Tornado original          |
//! |----------------------|---------------------------------------------------|---------------------------|
//! | this file            | [`Chat`]: the rooms by name, history, metrics     | the global `MessageBuffer`|
//! | [`message`]          | [`Message`], `message.html` rendering             | the message dict          |
//! | [`message_buffer`]   | [`MessageBuffer`]: cache of 200 + parked waiters  | `MessageBuffer`           |
//! | [`room`]             | [`Room`]: post, wait, cancel, subscribe           | —                         |
//! | [`post_limit`]       | [`PostLimiter`]: how often one user may post      | —                         |
//! | [`handlers`]         | `/`, `/room/{name}`, `/a/message/new`, `/a/message/updates` | the handlers    |
//! | [`socket`]           | `/chatsocket`: the same rooms over a WebSocket, join/leave notices | `demos/websocket` `ChatSocketHandler` |
//!
//! Wire protocol (docs/chat.md, "The protocol"): `POST /a/message/new` (form `body`, `room`,
//! `_xsrf`[, `next`]) answers the message object
//! `{"id","from","body","html","time"}` (or redirects to a local `next`);
//! `POST /a/message/updates` (form `cursor`, `room`, `_xsrf`) answers
//! `{"messages": [...]}` at once if the room has messages after `cursor`,
//! else when the next one is posted. `room` defaults to `lobby`, so
//! Tornado's own `chat.js` works unchanged against the lobby. One
//! extension: a user who posts faster than [`PostRate`] allows gets 429
//! with `Retry-After` (Tornado's demo has no limit).
//!
//! docs/chat.md walks through a long-poll request from park to finish.

pub mod handlers;
pub mod message;
pub mod message_buffer;
pub mod post_limit;
pub mod room;
pub mod socket;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::path::PathBuf;
use std::rc::Rc;

pub use message::{Message, MessageTemplate};
pub use message_buffer::{MessageBuffer, WaiterId, CACHE_SIZE};
pub use post_limit::{PostLimiter, PostRate};
pub use room::{MessageError, Room, Subscriber, Subscription};

use super::config::Config;
use super::site::{write_metric, Metrics};
use super::store::{self, AppendLog};
use crate::web::AssetSource;
use room::Shared;

/// The room at `/`, and the default of the `room` argument.
pub const LOBBY: &str = "lobby";
/// Longest room name.
pub const MAX_ROOM_NAME: usize = 32;
/// Most rooms kept at once. Rooms are made by visiting `/room/<name>`, so
/// this bounds what visitors can make the server remember.
pub const MAX_ROOMS: usize = 1000;
/// Largest message body by default, in bytes (UTF-8).
pub const DEFAULT_MAX_BODY_BYTES: usize = 4096;
/// Rooms listed in a page's sidebar.
pub const MAX_LISTED_ROOMS: usize = 50;
/// File of chat history in the data directory (one message per line).
pub const HISTORY_FILE: &str = "chat.jsonl";

/// How to build a [`Chat`].
#[derive(Clone, Debug)]
pub struct ChatOptions {
    /// Where `message.html` is.
    pub templates: AssetSource,
    /// Re-read `message.html` on every message.
    pub debug: bool,
    /// Keep history in `data_dir/chat.jsonl`; `None` = memory only.
    pub data_dir: Option<PathBuf>,
    /// Largest accepted message body, in bytes.
    pub max_body_bytes: usize,
    /// How often one user may post (over all rooms and both transports).
    pub post_rate: PostRate,
}

impl ChatOptions {
    /// The options the `squall` binary was given.
    pub fn from_config(config: &Config) -> ChatOptions {
        ChatOptions {
            templates: config.template_source(),
            debug: config.debug,
            data_dir: config.data_dir.clone(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            post_rate: config.chat_post_rate,
        }
    }
}

/// Why a room cannot be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomError {
    /// Not 1-32 characters of `a-z`, `0-9`, `_`, `-`.
    BadName,
    /// [`MAX_ROOMS`] rooms exist and none is idle enough to forget.
    TooManyRooms,
}

impl From<RoomError> for crate::web::HTTPError {
    fn from(e: RoomError) -> Self {
        match e {
            RoomError::BadName => crate::web::HTTPError::not_found(
                "No such room: room names are 1 to 32 characters of a-z, 0-9, '_' and '-'.",
            ),
            RoomError::TooManyRooms => {
                crate::web::HTTPError::new(503, "Too many rooms; try an existing one.")
            }
        }
    }
}

/// A line of the sidebar's room list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSummary {
    /// Room name.
    pub name: String,
    /// Cached messages.
    pub messages: usize,
}

/// Every room of the server. Cheap to clone; belongs to the loop's thread.
#[derive(Clone)]
pub struct Chat {
    inner: Rc<ChatInner>,
}

struct ChatInner {
    /// Rooms by name (sorted, for stable listings).
    rooms: RefCell<BTreeMap<String, Room>>,
    /// What every room shares.
    shared: Rc<Shared>,
}

impl Chat {
    /// A chat; with a data directory, its history is read back now (before
    /// the loop runs) and appended to from then on.
    pub fn new(options: ChatOptions) -> io::Result<Chat> {
        let template = MessageTemplate::new(options.templates.clone(), options.debug);
        let (history, restored) = match &options.data_dir {
            Some(dir) => {
                let path = dir.join(HISTORY_FILE);
                let restored = load_history(&path)?;
                (Some(AppendLog::open(&path)?), restored)
            }
            None => (None, BTreeMap::new()),
        };
        let shared = Rc::new(Shared {
            template,
            history,
            max_body_bytes: options.max_body_bytes,
            posted: Cell::new(0),
            post_limit: RefCell::new(PostLimiter::new(options.post_rate)),
            refused: Cell::new(0),
        });
        let mut rooms = BTreeMap::new();
        for (name, records) in restored {
            let room = Room::new(&name, Rc::clone(&shared));
            for r in records {
                room.restore(Message::restore(
                    &shared.template,
                    r.id,
                    &r.from,
                    &r.body,
                    r.time,
                ));
            }
            rooms.insert(name, room);
        }
        Ok(Chat {
            inner: Rc::new(ChatInner {
                rooms: RefCell::new(rooms),
                shared,
            }),
        })
    }

    /// The room called `name`, made on first use. When [`MAX_ROOMS`] exist,
    /// rooms with no messages and nobody in them are forgotten first.
    pub fn room(&self, name: &str) -> Result<Room, RoomError> {
        if !valid_room_name(name) {
            return Err(RoomError::BadName);
        }
        let mut rooms = self.inner.rooms.borrow_mut();
        if let Some(room) = rooms.get(name) {
            return Ok(room.clone());
        }
        if rooms.len() >= MAX_ROOMS {
            rooms.retain(|_, r| !r.is_empty() || r.waiter_count() + r.subscriber_count() > 0);
            if rooms.len() >= MAX_ROOMS {
                return Err(RoomError::TooManyRooms);
            }
        }
        let room = Room::new(name, Rc::clone(&self.inner.shared));
        rooms.insert(name.to_string(), room.clone());
        Ok(room)
    }

    /// How often one user may post (`--chat-post-rate`, `--chat-post-burst`).
    pub fn post_rate(&self) -> PostRate {
        self.inner.shared.post_limit.borrow().rate()
    }

    /// Largest accepted message body, in bytes.
    pub fn max_body_bytes(&self) -> usize {
        self.inner.shared.max_body_bytes
    }

    /// Rooms for the sidebar: the lobby, `current`, then the rooms with
    /// messages, most recently active first; at most [`MAX_LISTED_ROOMS`].
    pub fn room_list(&self, current: &str) -> Vec<RoomSummary> {
        let rooms = self.inner.rooms.borrow();
        let mut active: Vec<&Room> = rooms
            .values()
            .filter(|r| r.name() != LOBBY && r.name() != current && !r.is_empty())
            .collect();
        active.sort_by(|a, b| b.last_time().total_cmp(&a.last_time()));
        let mut list: Vec<RoomSummary> = Vec::new();
        for name in [LOBBY, current] {
            if list.iter().all(|s| s.name != name) {
                let messages = rooms.get(name).map_or(0, Room::len);
                list.push(RoomSummary {
                    name: name.to_string(),
                    messages,
                });
            }
        }
        list.extend(active.into_iter().map(|r| RoomSummary {
            name: r.name().to_string(),
            messages: r.len(),
        }));
        list.truncate(MAX_LISTED_ROOMS);
        list
    }

    /// Long-poll waiters parked in all rooms.
    pub fn waiter_count(&self) -> usize {
        self.inner
            .rooms
            .borrow()
            .values()
            .map(Room::waiter_count)
            .sum()
    }

    /// Subscriptions (WebSocket clients) in all rooms.
    pub fn subscriber_count(&self) -> usize {
        let rooms = self.inner.rooms.borrow();
        rooms.values().map(Room::subscriber_count).sum()
    }

    /// Messages posted since start.
    pub fn messages_total(&self) -> u64 {
        self.inner.shared.posted.get()
    }

    /// Posts refused for the post rate since start.
    pub fn posts_refused(&self) -> u64 {
        self.inner.shared.refused.get()
    }

    /// Rooms in memory.
    pub fn room_count(&self) -> usize {
        self.inner.rooms.borrow().len()
    }

    /// Add the chat's gauges and counters to `/metrics`.
    pub fn register_metrics(&self, metrics: &Metrics) {
        let chat = self.clone();
        metrics.register(move |out| {
            write_metric(
                out,
                "squall_chat_waiters",
                "gauge",
                "Long-poll requests parked in chat rooms.",
                chat.waiter_count(),
            );
            write_metric(
                out,
                "squall_chat_subscribers",
                "gauge",
                "Subscriptions to chat rooms (WebSocket clients).",
                chat.subscriber_count(),
            );
            write_metric(
                out,
                "squall_chat_messages_total",
                "counter",
                "Chat messages posted since start.",
                chat.messages_total(),
            );
            write_metric(
                out,
                "squall_chat_posts_refused_total",
                "counter",
                "Chat posts refused because their user posted too fast.",
                chat.posts_refused(),
            );
            write_metric(
                out,
                "squall_chat_rooms",
                "gauge",
                "Chat rooms in memory.",
                chat.room_count(),
            );
        });
    }
}

/// A room name: 1 to [`MAX_ROOM_NAME`] of `a-z`, `0-9`, `_`, `-`.
pub fn valid_room_name(name: &str) -> bool {
    (1..=MAX_ROOM_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'))
}

/// One message as stored in `chat.jsonl`.
struct Record {
    id: String,
    from: String,
    body: String,
    time: f64,
    /// The line as read, for compaction.
    line: String,
}

/// Read `chat.jsonl`: the last [`CACHE_SIZE`] messages of each of at most
/// [`MAX_ROOMS`] rooms. If it held more, it is rewritten with only those,
/// so the file stays bounded across restarts.
fn load_history(path: &std::path::Path) -> io::Result<BTreeMap<String, VecDeque<Record>>> {
    let mut rooms: BTreeMap<String, VecDeque<Record>> = BTreeMap::new();
    let mut lines = 0usize;
    store::for_each_line(path, |line| {
        lines += 1;
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            return log::warn!("{}: skipping a bad line", path.display());
        };
        let (Some(room), Some(id), Some(from), Some(body), Some(time)) = (
            v["room"].as_str(),
            v["id"].as_str(),
            v["from"].as_str(),
            v["body"].as_str(),
            v["time"].as_f64(),
        ) else {
            return log::warn!("{}: skipping an incomplete line", path.display());
        };
        if !valid_room_name(room) || (rooms.len() >= MAX_ROOMS && !rooms.contains_key(room)) {
            return;
        }
        let cache = rooms.entry(room.to_string()).or_default();
        if cache.len() == CACHE_SIZE {
            cache.pop_front();
        }
        cache.push_back(Record {
            id: id.to_string(),
            from: from.to_string(),
            body: body.to_string(),
            time,
            line: line.to_string(),
        });
    })?;
    let kept: usize = rooms.values().map(VecDeque::len).sum();
    if lines > kept {
        store::rewrite(path, rooms.values().flatten().map(|r| r.line.as_str()))?;
        log::info!("{}: compacted {lines} lines to {kept}", path.display());
    }
    log::info!("{kept} chat messages loaded from {}", path.display());
    Ok(rooms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names() {
        assert!(valid_room_name("lobby"));
        assert!(valid_room_name("a-b_9"));
        assert!(valid_room_name(&"x".repeat(32)));
        assert!(!valid_room_name(""));
        assert!(!valid_room_name(&"x".repeat(33)));
        assert!(!valid_room_name("Lobby"));
        assert!(!valid_room_name("a b"));
        assert!(!valid_room_name("../x"));
    }
}
