//! [`Room`]: one chat room — its [`MessageBuffer`], its subscribers — and
//! the small API every chat front end uses: the long-poll handlers here,
//! and the WebSocket chat (`/chatsocket`), which calls
//! [`Room::post_message`] for each frame and [`Room::subscribe`] per socket.
//!
//! One message reaches everybody in one pass ([`Room::post_message`]):
//!
//! ```text
//!  post_message(from, body)
//!    ├─ checks: not empty, not too long, the user's post rate (PostLimiter)
//!    ├─ Message::new: id, time, html (rendered once), json (serialized once)
//!    ├─ buffer.add → the parked waiters, taken out of the buffer
//!    ├─ borrow released ───────────── from here on callbacks may re-enter
//!    ├─ body = {"messages":[json]}    built once
//!    ├─ every waiter(body)            the same bytes to each
//!    ├─ every subscriber(&message)    the same Rc<Message> to each
//!    └─ history.append(line)          to the writer thread, if persistent
//! ```

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::rc::{Rc, Weak};
use std::time::Duration;

use super::message::{Message, MessageTemplate};
use super::message_buffer::{
    messages_json, newest_within, MessageBuffer, WaiterId, MAX_ANSWER_BYTES,
};
use super::post_limit::{retry_after_secs, PostLimiter};
use crate::apps::store::AppendLog;

/// A persistent listener: called with every new message of the room.
pub type Subscriber = Rc<dyn Fn(&Rc<Message>)>;

/// Why [`Room::post_message`] refused a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageError {
    /// Nothing but whitespace.
    Empty,
    /// More bytes (UTF-8) than the chat accepts.
    TooLong {
        /// The limit.
        max: usize,
    },
    /// The user is posting faster than the chat's [`PostRate`](super::PostRate).
    TooFast {
        /// Until the next post will be accepted.
        retry_after: Duration,
    },
    /// The history on disk could not take the message (its writer is far
    /// behind or gone): refused rather than shown and then lost.
    NotSaved,
}

impl MessageError {
    /// The HTTP status that says this (the WebSocket error object carries
    /// the same code).
    pub fn status(&self) -> u16 {
        match self {
            MessageError::Empty => 400,
            MessageError::TooLong { .. } => 413,
            MessageError::TooFast { .. } => 429,
            MessageError::NotSaved => 503,
        }
    }

    /// For [`MessageError::TooFast`]: the wait in whole seconds, rounded
    /// up, as HTTP's `Retry-After` wants it; 1 for
    /// [`MessageError::NotSaved`].
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            MessageError::TooFast { retry_after } => Some(retry_after_secs(*retry_after)),
            MessageError::NotSaved => Some(1),
            _ => None,
        }
    }
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageError::Empty => write!(f, "the message is empty"),
            MessageError::TooLong { max } => write!(f, "the message is longer than {max} bytes"),
            MessageError::TooFast { .. } => write!(
                f,
                "too many messages: wait {} s before posting again",
                self.retry_after_secs().unwrap_or(1)
            ),
            MessageError::NotSaved => {
                write!(f, "the message could not be saved; try again in a moment")
            }
        }
    }
}

/// What every room of one chat shares.
pub(crate) struct Shared {
    /// Renders `message.html`.
    pub(crate) template: MessageTemplate,
    /// Where new messages are appended; `None` = memory only.
    pub(crate) history: Option<AppendLog>,
    /// Largest accepted message body, in bytes.
    pub(crate) max_body_bytes: usize,
    /// Messages posted since start (for `/metrics`).
    pub(crate) posted: Cell<u64>,
    /// How often each user may post, over all rooms.
    pub(crate) post_limit: RefCell<PostLimiter>,
    /// Posts refused by `post_limit` since start (for `/metrics`: an
    /// operator sees whether the limit bites).
    pub(crate) refused: Cell<u64>,
}

/// One chat room. Cheap to clone: every clone is the same room.
#[derive(Clone)]
pub struct Room {
    inner: Rc<RoomInner>,
}

struct RoomInner {
    /// Validated name (`[a-z0-9_-]{1,32}`).
    name: String,
    /// Recent messages and parked long-poll waiters.
    buffer: RefCell<MessageBuffer>,
    /// Persistent listeners (WebSocket clients) by id. Ordered (ids only
    /// grow), so a broadcast visits members in the order they joined, which
    /// is close to the order their state was allocated in: a hash map's
    /// order jumps all over the heap, and at 10 000 members each jump is a
    /// cache and TLB miss (see `message_buffer.rs`).
    subscribers: RefCell<BTreeMap<u64, Subscriber>>,
    /// The next subscriber id (never reused).
    next_subscriber: Cell<u64>,
    /// Template, history file, limits.
    shared: Rc<Shared>,
}

impl Room {
    pub(crate) fn new(name: &str, shared: Rc<Shared>) -> Room {
        Room {
            inner: Rc::new(RoomInner {
                name: name.to_string(),
                buffer: RefCell::new(MessageBuffer::default()),
                subscribers: RefCell::new(BTreeMap::new()),
                next_subscriber: Cell::new(0),
                shared,
            }),
        }
    }

    /// The room's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Post `body` (surrounding whitespace trimmed) as `from`, and deliver
    /// it to every waiter and subscriber of this room before returning.
    pub fn post_message(&self, from: &str, body: &str) -> Result<Rc<Message>, MessageError> {
        let body = body.trim();
        let max = self.inner.shared.max_body_bytes;
        if body.is_empty() {
            return Err(MessageError::Empty);
        }
        if body.len() > max {
            return Err(MessageError::TooLong { max });
        }
        // Only a message that would be accepted spends a post.
        let now = crate::ioloop::IterationClock::now();
        if let Err(retry_after) = self.inner.shared.post_limit.borrow_mut().take(from, now) {
            let refused = &self.inner.shared.refused;
            refused.set(refused.get() + 1);
            return Err(MessageError::TooFast { retry_after });
        }
        let message = Rc::new(Message::new(&self.inner.shared.template, from, body));
        // Saved (queued for the disk) before anyone sees it: a message the
        // history cannot take is refused, not shown and then lost.
        if let Some(history) = &self.inner.shared.history {
            let record = serde_json::json!({
                "room": self.name(), "id": message.id, "from": message.from,
                "body": message.body, "time": message.time,
            });
            if history.append(record.to_string()).is_err() {
                return Err(MessageError::NotSaved);
            }
        }
        self.deliver(&message);
        let posted = &self.inner.shared.posted;
        posted.set(posted.get() + 1);
        Ok(message)
    }

    /// Long-poll: if the room has messages after `cursor` (see
    /// [`MessageBuffer::messages_since`]), call `waiter` with them now and
    /// return `None`; else park it until the next message and return its
    /// id for [`cancel_wait`](Self::cancel_wait). `waiter` gets the answer
    /// body, `{"messages": [...]}`: the newest of them whose JSON fits
    /// [`MAX_ANSWER_BYTES`].
    pub fn wait_for_messages(
        &self,
        cursor: Option<&str>,
        waiter: impl FnOnce(&[u8]) + 'static,
    ) -> Option<WaiterId> {
        let mut buffer = self.inner.buffer.borrow_mut();
        // One look for the cursor (an empty collect allocates nothing).
        let missed: Vec<&Rc<Message>> = buffer.messages_since(cursor).collect();
        if missed.is_empty() {
            return Some(buffer.wait(Box::new(waiter)));
        }
        let first = newest_within(&missed, MAX_ANSWER_BYTES, |m| m.json.len());
        let body = messages_json(missed[first..].iter().copied());
        drop(missed);
        drop(buffer); // never call out while borrowed
        waiter(&body);
        None
    }

    /// Forget a parked waiter (its client disconnected): O(1).
    pub fn cancel_wait(&self, id: WaiterId) {
        let waiter = self.inner.buffer.borrow_mut().cancel_wait(id);
        // Dropped after the borrow ends: it owns a Ctx, whose drop may run
        // framework code.
        drop(waiter);
    }

    /// Call `callback` with every message posted from now on, until the
    /// returned [`Subscription`] is dropped.
    pub fn subscribe(&self, callback: impl Fn(&Rc<Message>) + 'static) -> Subscription {
        let id = self.inner.next_subscriber.get();
        self.inner.next_subscriber.set(id + 1);
        self.inner
            .subscribers
            .borrow_mut()
            .insert(id, Rc::new(callback));
        Subscription {
            room: Rc::downgrade(&self.inner),
            id,
        }
    }

    /// The newest cached messages whose HTML fits [`MAX_ANSWER_BYTES`],
    /// oldest first (what a room page shows).
    pub fn page_messages(&self) -> Vec<Rc<Message>> {
        let all = self.messages();
        let first = newest_within(&all, MAX_ANSWER_BYTES, |m| m.html.len());
        all[first..].to_vec()
    }

    /// The cached messages, oldest first (at most 200).
    pub fn messages(&self) -> Vec<Rc<Message>> {
        self.inner
            .buffer
            .borrow()
            .messages_since(None)
            .cloned()
            .collect()
    }

    /// The cached messages after the one with id `cursor`, by the long-poll
    /// rule ([`MessageBuffer::messages_since`]: unknown or no cursor → all).
    /// For a WebSocket that reconnects and catches up.
    pub fn messages_since(&self, cursor: Option<&str>) -> Vec<Rc<Message>> {
        let buffer = self.inner.buffer.borrow();
        buffer.messages_since(cursor).cloned().collect()
    }

    /// Cached messages.
    pub fn len(&self) -> usize {
        self.inner.buffer.borrow().len()
    }

    /// True if no message is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Time of the newest cached message (0 if none).
    pub fn last_time(&self) -> f64 {
        let buffer = self.inner.buffer.borrow();
        buffer.messages_since(None).last().map_or(0.0, |m| m.time)
    }

    /// Parked long-poll waiters.
    pub fn waiter_count(&self) -> usize {
        self.inner.buffer.borrow().waiter_count()
    }

    /// Live subscriptions.
    pub fn subscriber_count(&self) -> usize {
        self.inner.subscribers.borrow().len()
    }

    /// Put a message read back from the data file into the cache (start-up:
    /// nobody is waiting yet, nothing is written).
    pub(crate) fn restore(&self, message: Message) {
        let waiters = self.inner.buffer.borrow_mut().add(Rc::new(message));
        debug_assert!(waiters.is_empty());
    }

    /// The one-pass fan-out (see the module docs).
    fn deliver(&self, message: &Rc<Message>) {
        let waiters = self.inner.buffer.borrow_mut().add(Rc::clone(message));
        let subscribers: Vec<Subscriber> =
            self.inner.subscribers.borrow().values().cloned().collect();
        // No borrow is held from here on: a waiter or subscriber may post,
        // wait, subscribe or unsubscribe without a BorrowMutError.
        if !waiters.is_empty() {
            let body = messages_json([message]);
            for waiter in waiters {
                waiter(&body);
            }
        }
        for subscriber in subscribers {
            subscriber(message);
        }
    }
}

/// A live [`Room::subscribe`]: dropping it unsubscribes (O(1)).
pub struct Subscription {
    /// Weak: a subscription does not keep its room alive.
    room: Weak<RoomInner>,
    /// Key in the room's subscriber table.
    id: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(room) = self.room.upgrade() {
            // Taken out first, dropped after the borrow ends: the callback's
            // captures may own other subscriptions.
            // (A B-tree frees its nodes as it empties: no room to give back.)
            let removed = room.subscribers.borrow_mut().remove(&self.id);
            drop(removed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::message_buffer::CACHE_SIZE;
    use super::super::post_limit::PostRate;
    use super::*;

    fn room(name: &str, max_body_bytes: usize) -> Room {
        rate_limited_room(name, max_body_bytes, PostRate::UNLIMITED)
    }

    fn rate_limited_room(name: &str, max_body_bytes: usize, rate: PostRate) -> Room {
        let templates = crate::web::AssetSource::Bundled(crate::apps::assets::TEMPLATES);
        Room::new(
            name,
            Rc::new(Shared {
                template: MessageTemplate::new(templates, false),
                history: None,
                max_body_bytes,
                posted: Cell::new(0),
                post_limit: RefCell::new(PostLimiter::new(rate)),
                refused: Cell::new(0),
            }),
        )
    }

    #[test]
    fn subscribers_get_every_message_until_dropped() {
        let r = room("subs", 100);
        let seen = Rc::new(RefCell::new(Vec::new()));
        let log = Rc::clone(&seen);
        let sub = r.subscribe(move |m| log.borrow_mut().push(m.body.clone()));
        assert_eq!(r.subscriber_count(), 1);
        let m = r.post_message("ann", "  one  ").expect("posted");
        assert_eq!(m.body, "one");
        drop(sub);
        assert_eq!(r.subscriber_count(), 0);
        r.post_message("ann", "two").expect("posted");
        assert_eq!(*seen.borrow(), ["one"]);
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn a_broadcast_reaches_subscribers_in_the_order_they_joined() {
        let r = room("order", 100);
        let order = Rc::new(RefCell::new(Vec::new()));
        let mut subs: Vec<Option<Subscription>> = (0..500)
            .map(|n| {
                let order = Rc::clone(&order);
                Some(r.subscribe(move |_| order.borrow_mut().push(n)))
            })
            .collect();
        for sub in subs.iter_mut().step_by(3) {
            sub.take();
        }
        r.post_message("ann", "hi").expect("posted");
        let expected: Vec<i32> = (0..500).filter(|n| n % 3 != 0).collect();
        assert_eq!(*order.borrow(), expected);
    }

    #[test]
    fn bodies_are_checked() {
        let r = room("limits", 5);
        assert_eq!(r.post_message("a", " \n ").err(), Some(MessageError::Empty));
        assert_eq!(
            r.post_message("a", "123456").err(),
            Some(MessageError::TooLong { max: 5 })
        );
        assert!(r.post_message("a", "12345").is_ok());
        assert!(r.post_message("a", "ééé").is_err(), "bytes, not characters");
    }

    #[test]
    fn a_user_over_the_post_rate_is_refused_and_nothing_is_sent() {
        // One post per 1000 s: the test never sees a refill.
        let rate = PostRate {
            per_second: 0.001,
            burst: 2,
        };
        let r = rate_limited_room("rate", 10, rate);
        let seen = Rc::new(Cell::new(0));
        let s = Rc::clone(&seen);
        let _sub = r.subscribe(move |_| s.set(s.get() + 1));
        // Refused bodies spend nothing.
        assert_eq!(r.post_message("ann", " ").err(), Some(MessageError::Empty));
        assert!(r.post_message("ann", "far too long!").is_err());
        assert!(r.post_message("ann", "one").is_ok());
        assert!(r.post_message("ann", "two").is_ok());
        let refused = r.post_message("ann", "three").err();
        assert!(
            matches!(refused, Some(MessageError::TooFast { .. })),
            "{refused:?}"
        );
        let refused = refused.expect("refused");
        assert_eq!(refused.status(), 429);
        // ≈ 1000 s, rounded up to whole seconds.
        assert!(
            (999..=1000).contains(&refused.retry_after_secs().unwrap_or(0)),
            "{refused}"
        );
        assert!(refused.to_string().starts_with("too many messages"));
        assert_eq!(seen.get(), 2);
        assert_eq!(r.inner.shared.posted.get(), 2);
        assert_eq!(r.inner.shared.refused.get(), 1);
        assert!(
            r.post_message("bob", "mine").is_ok(),
            "others are not held up"
        );
    }

    #[test]
    fn a_message_the_history_cannot_take_is_refused_not_shown() {
        let templates = crate::web::AssetSource::Bundled(crate::apps::assets::TEMPLATES);
        let r = Room::new(
            "disk",
            Rc::new(Shared {
                template: MessageTemplate::new(templates, false),
                history: Some(AppendLog::without_writer(std::path::Path::new(
                    "chat.jsonl",
                ))),
                max_body_bytes: 100,
                posted: Cell::new(0),
                post_limit: RefCell::new(PostLimiter::new(PostRate::UNLIMITED)),
                refused: Cell::new(0),
            }),
        );
        let seen = Rc::new(Cell::new(0));
        let s = Rc::clone(&seen);
        let _sub = r.subscribe(move |_| s.set(s.get() + 1));
        let refused = r.post_message("ann", "hello").err();
        assert_eq!(refused, Some(MessageError::NotSaved));
        assert_eq!(refused.map(|e| e.status()), Some(503));
        assert_eq!(refused.and_then(|e| e.retry_after_secs()), Some(1));
        assert_eq!(seen.get(), 0, "nobody saw a message that is not saved");
        assert!(r.is_empty());
    }

    #[test]
    fn answers_carry_the_newest_messages_that_fit_the_budget() {
        // 200 bodies of 4 KiB of quotes: each is ~33 KB as JSON (`&quot;`
        // inside an escaped string) and ~24 KB as HTML, 6.6 MB in all.
        let r = room("big", 4096);
        let quotes = "\"".repeat(4096);
        for _ in 0..CACHE_SIZE {
            r.post_message("ann", &quotes).expect("posted");
        }
        let all = r.messages();
        assert!(all.iter().map(|m| m.json.len()).sum::<usize>() > 3 * MAX_ANSWER_BYTES);
        let newest = all.last().map(|m| m.id.clone()).expect("messages");

        let body = Rc::new(RefCell::new(Vec::new()));
        let b = Rc::clone(&body);
        assert!(r
            .wait_for_messages(None, move |got| *b.borrow_mut() = got.to_vec())
            .is_none());
        let body = body.borrow();
        assert!(body.len() <= MAX_ANSWER_BYTES + 64, "{} bytes", body.len());
        let answer: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        let sent = answer["messages"].as_array().expect("messages");
        assert!(
            sent.len() > 10 && sent.len() < CACHE_SIZE,
            "{} messages",
            sent.len()
        );
        // The newest ones, in order, ending with the last posted.
        assert_eq!(
            sent.last().and_then(|m| m["id"].as_str()),
            Some(newest.as_str())
        );
        let first_sent = sent[0]["id"].as_str().expect("id");
        let at = all.iter().position(|m| m.id == first_sent).expect("cached");
        assert_eq!(at + sent.len(), all.len());

        // The page: the same rule, measured in HTML.
        let page = r.page_messages();
        assert!(page.iter().map(|m| m.html.len()).sum::<usize>() <= MAX_ANSWER_BYTES);
        assert!(page.len() < CACHE_SIZE);
        assert_eq!(page.last().map(|m| m.id.as_str()), Some(newest.as_str()));
        // Small rooms are shown whole.
        let small = room("small", 100);
        small.post_message("ann", "hi").expect("posted");
        assert_eq!(small.page_messages().len(), 1);
    }

    #[test]
    fn callbacks_may_reenter_the_room() {
        // A waiter that parks again and a subscriber that replies, both
        // called during one post: no RefCell borrow may be held then.
        let r = room("reenter", 100);
        let answers = Rc::new(Cell::new(0));
        let (r2, n) = (r.clone(), Rc::clone(&answers));
        let parked = r.wait_for_messages(None, move |body| {
            n.set(n.get() + 1);
            assert!(body.starts_with(br#"{"messages":["#));
            let m = r2.messages().last().map(|m| m.id.clone());
            assert!(r2.wait_for_messages(m.as_deref(), |_| {}).is_some());
        });
        assert!(parked.is_some());
        let r3 = r.clone();
        let _sub = r.subscribe(move |m| {
            if m.from != "bot" {
                r3.post_message("bot", "echo").expect("reply");
            }
        });
        r.post_message("ann", "hi").expect("posted");
        assert_eq!(answers.get(), 1);
        let bodies: Vec<String> = r.messages().iter().map(|m| m.body.clone()).collect();
        assert_eq!(bodies, ["hi", "echo"]);
        // The re-parked waiter got "echo" (one-shot, then gone).
        assert_eq!(r.waiter_count(), 0);
    }

    #[test]
    fn cancel_is_o1_and_idempotent() {
        let r = room("cancel", 100);
        let id = r
            .wait_for_messages(None, |_| panic!("cancelled"))
            .expect("parked");
        assert_eq!(r.waiter_count(), 1);
        r.cancel_wait(id);
        r.cancel_wait(id);
        assert_eq!(r.waiter_count(), 0);
        r.post_message("a", "nobody waits").expect("posted");
    }
}
