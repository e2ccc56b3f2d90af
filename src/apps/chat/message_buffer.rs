//! [`MessageBuffer`]: a room's last 200 messages and the long-poll requests
//! waiting for the next one.
//!
//! Mirrors `MessageBuffer` of Tornado 3.2's `demos/chat/chatdemo.py`
//! (`wait_for_messages`, `cancel_wait`, `new_messages`, `cache`), as plain
//! data: it holds no `Rc` of its own and calls nobody. [`Room`](super::Room)
//! wraps it, and calls the waiters [`add`](MessageBuffer::add) hands back
//! *after* releasing its borrow — so a waiter may post, wait or cancel
//! without re-entering a borrowed buffer.
//!
//! Invariant: a waiter is parked only when it has every cached message, so
//! the next message is exactly what each parked waiter lacks — which is why
//! one answer body, built once, serves them all.

use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use super::message::Message;

/// How many messages a room remembers (Tornado's `cache_size`).
pub const CACHE_SIZE: usize = 200;

/// Most bytes of cached messages one answer carries: a long-poll answer,
/// a WebSocket catch-up, the messages of a room page. 200 messages of 4 KiB
/// bodies made of characters that HTML and JSON escape come to 6.6 MB as
/// JSON; a client that asked with no cursor and never read would hold that
/// much in its write buffer. Older messages past the budget are skipped
/// (the newest are what a reader wants; a reload shows the rest of what
/// fits). Half the WebSocket write bound, so a catch-up alone never trips
/// it.
pub const MAX_ANSWER_BYTES: usize = 2 * 1024 * 1024;

/// Where the newest of `messages` (oldest first) whose `size`s add up to at
/// most `budget` begin: `&messages[start..]` is what to send. Never more
/// than `messages.len()`; 0 when they all fit.
pub fn newest_within<M>(messages: &[M], budget: usize, size: impl Fn(&M) -> usize) -> usize {
    let mut left = budget;
    messages
        .iter()
        .rposition(|m| match left.checked_sub(size(m)) {
            Some(rest) => {
                left = rest;
                false
            }
            None => true,
        })
        .map_or(0, |i| i + 1)
}

/// A parked long-poll request: called once with the answer body.
pub type Waiter = Box<dyn FnOnce(&[u8])>;

/// A parked waiter's ticket, for [`MessageBuffer::cancel_wait`]. Ids are
/// never reused, so a stale ticket can never cancel someone else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WaiterId(u64);

/// The cache and the waiters of one room.
#[derive(Default)]
pub struct MessageBuffer {
    /// The last [`CACHE_SIZE`] messages, oldest first.
    cache: VecDeque<Rc<Message>>,
    /// Parked waiters by id. Ordered, because the order matters when a
    /// message answers them all: ids only grow, so [`add`](Self::add) hands
    /// them back in the order they parked, which is close to the order
    /// their responses, streams and connections were allocated in. A hash
    /// map's order visits 10 000 waiters' state at random over the heap,
    /// a cache and TLB miss each time: in `longpoll-fanout --n 10000` the
    /// server's user time per fan-out halved with this order (15.3 → 8.0
    /// ms). Adding (at the right end) and cancelling are O(log n); a B-tree
    /// frees its nodes as it empties, so it needs no shrinking.
    waiters: BTreeMap<WaiterId, Waiter>,
    /// The next [`WaiterId`].
    next_id: u64,
}

impl MessageBuffer {
    /// The messages after the one with id `cursor`, oldest first. An
    /// unknown cursor (evicted, or from before a restart) or none at all
    /// gets the whole cache (Tornado 6's rule: the client dedups by id).
    pub fn messages_since(&self, cursor: Option<&str>) -> impl Iterator<Item = &Rc<Message>> {
        let after = cursor.and_then(|c| self.cache.iter().rposition(|m| m.id == c));
        self.cache.range(after.map_or(0, |i| i + 1)..)
    }

    /// Park `waiter` until the next message.
    pub fn wait(&mut self, waiter: Waiter) -> WaiterId {
        let id = WaiterId(self.next_id);
        self.next_id += 1;
        self.waiters.insert(id, waiter);
        id
    }

    /// Take a parked waiter out (its client went away); `None` if it was
    /// already answered. The caller drops it after letting go of the buffer.
    pub fn cancel_wait(&mut self, id: WaiterId) -> Option<Waiter> {
        self.waiters.remove(&id)
    }

    /// Cache `message` and hand back every parked waiter, for the caller to
    /// answer once it has let go of the buffer.
    pub fn add(&mut self, message: Rc<Message>) -> Vec<Waiter> {
        if self.cache.len() == CACHE_SIZE {
            self.cache.pop_front();
        }
        self.cache.push_back(message);
        // In id order: the order they parked in (see `waiters`).
        std::mem::take(&mut self.waiters).into_values().collect()
    }

    /// Parked waiters.
    pub fn waiter_count(&self) -> usize {
        self.waiters.len()
    }

    /// Cached messages.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// True if no message is cached.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }
}

/// The answer body `{"messages": [...]}` for `messages`, built from each
/// message's JSON serialized when it was made.
pub fn messages_json<'a>(messages: impl IntoIterator<Item = &'a Rc<Message>>) -> Vec<u8> {
    let mut out = br#"{"messages":["#.to_vec();
    for (i, m) in messages.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(m.json.as_bytes());
    }
    out.extend_from_slice(b"]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn message(id: &str) -> Rc<Message> {
        Rc::new(Message {
            id: id.into(),
            from: "a".into(),
            body: "b".into(),
            time: 0.0,
            html: String::new(),
            json: format!("{{\"id\":\"{id}\"}}"),
            ws_frame: Default::default(),
        })
    }

    fn ids<'a>(it: impl Iterator<Item = &'a Rc<Message>>) -> Vec<String> {
        it.map(|m| m.id.clone()).collect()
    }

    #[test]
    fn newest_within_keeps_the_newest_that_fit() {
        let sizes = [5, 1, 2, 3];
        let size = |s: &usize| *s;
        assert_eq!(newest_within(&sizes, 100, size), 0, "all fit");
        assert_eq!(newest_within(&sizes, 5, size), 2, "3 + 2; 1 more is 6");
        assert_eq!(newest_within(&sizes, 6, size), 1);
        assert_eq!(newest_within(&sizes, 2, size), 4, "not even the newest");
        assert_eq!(newest_within::<usize>(&[], 0, size), 0);
    }

    #[test]
    fn cursor_rules() {
        let mut b = MessageBuffer::default();
        for id in ["1", "2", "3"] {
            assert!(b.add(message(id)).is_empty());
        }
        assert_eq!(ids(b.messages_since(Some("1"))), ["2", "3"]);
        assert!(ids(b.messages_since(Some("3"))).is_empty());
        assert_eq!(ids(b.messages_since(Some("gone"))), ["1", "2", "3"]);
        assert_eq!(ids(b.messages_since(None)), ["1", "2", "3"]);
    }

    #[test]
    fn cache_keeps_the_last_200() {
        let mut b = MessageBuffer::default();
        for i in 0..CACHE_SIZE + 5 {
            b.add(message(&i.to_string()));
        }
        assert_eq!(b.len(), CACHE_SIZE);
        assert_eq!(
            b.messages_since(None).next().map(|m| m.id.as_str()),
            Some("5")
        );
        // Evicted cursor: everything cached.
        assert_eq!(b.messages_since(Some("0")).count(), CACHE_SIZE);
    }

    #[test]
    fn waiters_are_answered_once_or_cancelled() {
        let got = Rc::new(RefCell::new(Vec::new()));
        let mut b = MessageBuffer::default();
        let mut ids = Vec::new();
        for n in 0..3 {
            let got = Rc::clone(&got);
            ids.push(b.wait(Box::new(move |body| {
                got.borrow_mut().push((n, body.to_vec()))
            })));
        }
        assert!(b.cancel_wait(ids[1]).is_some());
        assert_eq!(b.waiter_count(), 2);
        let m = message("x");
        let body = messages_json([&m]);
        assert_eq!(body, br#"{"messages":[{"id":"x"}]}"#);
        for w in b.add(m) {
            w(&body);
        }
        assert_eq!(b.waiter_count(), 0);
        // In the order they parked, not sorted afterwards (see `waiters`).
        let seen: Vec<i32> = got.borrow().iter().map(|(n, _)| *n).collect();
        assert_eq!(seen, [0, 2]);
        // A stale id cancels nothing.
        assert!(b.cancel_wait(ids[0]).is_none());
        assert_eq!(messages_json(std::iter::empty()), br#"{"messages":[]}"#);
    }

    #[test]
    fn a_crowd_of_waiters_is_handed_back_in_the_order_it_parked() {
        let mut b = MessageBuffer::default();
        let order = Rc::new(RefCell::new(Vec::new()));
        let mut ids = Vec::new();
        for n in 0..1000 {
            let order = Rc::clone(&order);
            ids.push(b.wait(Box::new(move |_| order.borrow_mut().push(n))));
        }
        for id in ids.iter().step_by(7) {
            assert!(b.cancel_wait(*id).is_some());
        }
        for w in b.add(message("m")) {
            w(b"");
        }
        let expected: Vec<i32> = (0..1000).filter(|n| n % 7 != 0).collect();
        assert_eq!(*order.borrow(), expected);
    }
}
