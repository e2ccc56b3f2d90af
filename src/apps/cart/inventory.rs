//! The stock and who holds it (the book's `ShoppingCart` class), plus the
//! parties waiting to hear about changes.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use slab::Slab;

use crate::ioloop::{IterationClock, PeriodicCallback};

/// Books in stock at start (the book's `totalInventory`).
pub const TOTAL_INVENTORY: u32 = 10;

/// How long a cart holds its book after the last `add`. The book's demo
/// holds it for ever, so eleven `POST /cart` with made-up session ids sold
/// the last copy for good, for everyone; a shop lets an abandoned cart go.
/// A page open that long has long since shown the count come back.
pub const CART_HOLD: Duration = Duration::from_secs(15 * 60);

/// Called once with the new count at the next change (a long-poll).
type Listener = Box<dyn FnOnce(u32)>;

/// Called with the new count at every change (a WebSocket page).
type Subscriber = Box<dyn Fn(u32)>;

/// Names a waiter for [`Inventory::cancel_wait`]. The sequence number makes
/// a stale key harmless: the slab slot may be reused by another waiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitKey {
    slot: usize,
    seq: u64,
}

/// Why an add or remove changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Nothing left to add.
    SoldOut,
}

/// Stock, carts, and listeners. Lives on the loop thread: checking and
/// changing the count happen in one callback, so no two requests can both
/// take the last book.
pub struct Inventory {
    /// Books left.
    count: Cell<u32>,
    /// Sessions holding a book (the book's `carts` dict), with when each
    /// last added it (for [`release_expired`](Self::release_expired)). At
    /// most `TOTAL_INVENTORY` entries, since each holds one of the books.
    carts: RefCell<HashMap<String, Instant>>,
    /// One-shot listeners (long-polls): taken and called on the next change.
    /// Slab keys give O(1) removal when a client leaves.
    waiters: RefCell<Slab<(u64, Listener)>>,
    /// Next waiter sequence number.
    next_seq: Cell<u64>,
    /// Persistent listeners (WebSocket pages): called on every change.
    subscribers: RefCell<Slab<Subscriber>>,
    /// The sweep that lets abandoned carts go, once started
    /// ([`expire_abandoned_carts`](Self::expire_abandoned_carts)); it holds
    /// the inventory weakly, and stops when the inventory is dropped.
    sweep: RefCell<Option<PeriodicCallback>>,
}

impl Default for Inventory {
    fn default() -> Self {
        Inventory::new(TOTAL_INVENTORY)
    }
}

impl Inventory {
    /// A store with `total` books.
    pub fn new(total: u32) -> Inventory {
        Inventory {
            count: Cell::new(total),
            carts: RefCell::new(HashMap::new()),
            waiters: RefCell::new(Slab::new()),
            next_seq: Cell::new(0),
            subscribers: RefCell::new(Slab::new()),
            sweep: RefCell::new(None),
        }
    }

    /// On the current loop, every `every`, give back the books of carts
    /// untouched for `hold` ([`release_expired`](Self::release_expired)).
    pub fn expire_abandoned_carts(self: &Rc<Self>, hold: Duration, every: Duration) {
        let weak = Rc::downgrade(self);
        let sweep = PeriodicCallback::new(every, move || {
            if let Some(inventory) = weak.upgrade() {
                let released = inventory.release_expired(IterationClock::now(), hold);
                if released > 0 {
                    log::info!("cart: {released} abandoned cart(s) gave their book back");
                }
            }
        });
        sweep.start();
        *self.sweep.borrow_mut() = Some(sweep);
    }

    /// Books left.
    pub fn count(&self) -> u32 {
        self.count.get()
    }

    /// Does `session` hold a book?
    pub fn in_cart(&self, session: &str) -> bool {
        self.carts.borrow().contains_key(session)
    }

    /// Put a book in `session`'s cart. Adding twice changes nothing but the
    /// time the hold counts from ([`CART_HOLD`]).
    pub fn add(&self, session: &str) -> Result<(), Refusal> {
        self.add_at(session, IterationClock::now())
    }

    /// [`add`](Self::add) at `now` (the clock injected, for tests).
    pub fn add_at(&self, session: &str, now: Instant) -> Result<(), Refusal> {
        if let Some(since) = self.carts.borrow_mut().get_mut(session) {
            *since = now;
            return Ok(());
        }
        let left = self.count.get();
        if left == 0 {
            return Err(Refusal::SoldOut);
        }
        self.count.set(left - 1);
        self.carts.borrow_mut().insert(session.to_string(), now);
        self.notify();
        Ok(())
    }

    /// Give back the books of carts last added to `hold` or more before
    /// `now`; one notice for all. Returns how many came back.
    pub fn release_expired(&self, now: Instant, hold: Duration) -> usize {
        let released = {
            let mut carts = self.carts.borrow_mut();
            let before = carts.len();
            carts.retain(|_, since| now.saturating_duration_since(*since) < hold);
            before - carts.len()
        };
        if released > 0 {
            let released_count = u32::try_from(released).unwrap_or(u32::MAX);
            self.count
                .set(self.count.get().saturating_add(released_count));
            self.notify();
        }
        released
    }

    /// Take the book out of `session`'s cart. Removing twice changes nothing.
    pub fn remove(&self, session: &str) {
        if self.carts.borrow_mut().remove(session).is_some() {
            self.count.set(self.count.get() + 1);
            self.notify();
        }
    }

    /// Call `listener` once, at the next change. Returns a key for
    /// [`cancel_wait`](Self::cancel_wait).
    pub fn wait_for_change(&self, listener: impl FnOnce(u32) + 'static) -> WaitKey {
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        let slot = self.waiters.borrow_mut().insert((seq, Box::new(listener)));
        WaitKey { slot, seq }
    }

    /// Forget a waiter (its client left). A key whose waiter already fired
    /// does nothing.
    pub fn cancel_wait(&self, key: WaitKey) {
        let removed = {
            let mut waiters = self.waiters.borrow_mut();
            let removed = match waiters.get(key.slot) {
                Some((seq, _)) if *seq == key.seq => Some(waiters.remove(key.slot)),
                _ => None,
            };
            crate::apps::sparse::shrink_if_sparse(&mut *waiters);
            removed
        };
        drop(removed);
    }

    /// Call `listener` on every change until [`unsubscribe`](Self::unsubscribe).
    pub fn subscribe(&self, listener: impl Fn(u32) + 'static) -> usize {
        self.subscribers.borrow_mut().insert(Box::new(listener))
    }

    /// Stop calling a subscriber.
    pub fn unsubscribe(&self, key: usize) {
        let removed = {
            let mut subscribers = self.subscribers.borrow_mut();
            let removed = subscribers.try_remove(key);
            crate::apps::sparse::shrink_if_sparse(&mut *subscribers);
            removed
        };
        drop(removed);
    }

    /// Parked long-polls (for `/metrics` and tests).
    pub fn waiter_count(&self) -> usize {
        self.waiters.borrow().len()
    }

    /// Open live subscriptions.
    pub fn subscriber_count(&self) -> usize {
        self.subscribers.borrow().len()
    }

    /// Tell everybody the new count. Waiters are taken out first, so a
    /// listener that registers again (a client re-polling at once) waits for
    /// the *next* change.
    fn notify(&self) {
        let count = self.count.get();
        // Taken whole: a drained slab keeps its room (see `apps::sparse`).
        let waiters: Vec<(u64, Listener)> = std::mem::take(&mut *self.waiters.borrow_mut())
            .into_iter()
            .map(|(_, waiter)| waiter)
            .collect();
        for (_, waiter) in waiters {
            waiter(count);
        }
        // Subscribers run with the table borrowed: they only queue bytes on
        // their connection (WebSocket writes), never touch the inventory.
        for (_, subscriber) in self.subscribers.borrow().iter() {
            subscriber(count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn never_below_zero_and_idempotent() {
        let inv = Inventory::new(2);
        assert_eq!(inv.add("a"), Ok(()));
        assert_eq!(inv.add("a"), Ok(()));
        assert_eq!(inv.count(), 1);
        assert_eq!(inv.add("b"), Ok(()));
        assert_eq!(inv.add("c"), Err(Refusal::SoldOut));
        assert_eq!(inv.count(), 0);
        inv.remove("a");
        inv.remove("a");
        assert_eq!(inv.count(), 1);
        assert!(!inv.in_cart("a"));
    }

    #[test]
    fn an_abandoned_cart_gives_its_book_back_after_the_hold() {
        let inv = Inventory::new(2);
        let t0 = Instant::now();
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = Rc::clone(&seen);
        inv.subscribe(move |n| s.borrow_mut().push(n));
        assert_eq!(inv.add_at("a", t0), Ok(()));
        assert_eq!(inv.add_at("b", t0 + CART_HOLD / 2), Ok(()));
        assert_eq!(inv.add_at("c", t0), Err(Refusal::SoldOut));
        // Not yet.
        assert_eq!(inv.release_expired(t0 + CART_HOLD / 2, CART_HOLD), 0);
        // "a" has held its book for the whole hold; "b" only half.
        assert_eq!(inv.release_expired(t0 + CART_HOLD, CART_HOLD), 1);
        assert!(!inv.in_cart("a") && inv.in_cart("b"));
        assert_eq!(inv.count(), 1);
        // Adding again renews the hold.
        assert_eq!(inv.add_at("b", t0 + CART_HOLD), Ok(()));
        assert_eq!(inv.release_expired(t0 + CART_HOLD * 3 / 2, CART_HOLD), 0);
        assert_eq!(inv.release_expired(t0 + CART_HOLD * 2, CART_HOLD), 1);
        assert_eq!(inv.count(), 2);
        // Every open page heard each change: a, b added; a back; b back.
        assert_eq!(*seen.borrow(), vec![1, 0, 1, 2]);
    }

    #[test]
    fn waiters_fire_once_and_cancel() {
        let inv = Inventory::new(10);
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = Rc::clone(&seen);
        inv.wait_for_change(move |n| s.borrow_mut().push(n));
        let s = Rc::clone(&seen);
        let gone = inv.wait_for_change(move |n| s.borrow_mut().push(n + 100));
        inv.cancel_wait(gone);
        inv.cancel_wait(gone);
        assert_eq!(inv.waiter_count(), 1);
        inv.add("x").ok();
        inv.add("y").ok();
        assert_eq!(*seen.borrow(), vec![9]);
        assert_eq!(inv.waiter_count(), 0);
    }

    #[test]
    fn stale_key_does_not_cancel_a_reused_slot() {
        let inv = Inventory::new(10);
        let first = inv.wait_for_change(|_| {});
        inv.add("x").ok(); // fires and frees the slot
        let fired = Rc::new(Cell::new(false));
        let f = Rc::clone(&fired);
        inv.wait_for_change(move |_| f.set(true)); // reuses the slot
        inv.cancel_wait(first);
        inv.add("y").ok();
        assert!(fired.get());
    }

    #[test]
    fn subscribers_see_every_change() {
        let inv = Inventory::new(10);
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = Rc::clone(&seen);
        let key = inv.subscribe(move |n| s.borrow_mut().push(n));
        inv.add("x").ok();
        inv.remove("x");
        inv.unsubscribe(key);
        inv.add("y").ok();
        assert_eq!(*seen.borrow(), vec![9, 10]);
    }
}
