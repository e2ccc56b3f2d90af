//! The timers of one loop: a heap of deadlines, the callbacks beside it in a
//! slab, and the handles that name them ([`TimeoutHandle`]).
//!
//! Mirrors the timer half of Tornado's `tornado/ioloop.py` (4.5
//! `PollIOLoop`): `call_at` pushes a `_Timeout` on a heap ordered by
//! `(deadline, counter)`, `remove_timeout` only marks it cancelled, and the
//! heap is rebuilt when more than 512 cancelled entries make up more than
//! half of it. [`IOLoop::call_at`](super::IOLoop::call_at),
//! [`IOLoop::remove_timeout`](super::IOLoop::remove_timeout) and steps 2, 3
//! and 5 of [`IOLoop::start`](super::IOLoop::start) are the loop's side.
//!
//! # Invariants
//!
//! * A heap entry is *live* while its slot holds the same `seq`; any other
//!   entry is stale (its timer fired or was cancelled) and is skipped when
//!   it reaches the top. `cancelled` counts the stale entries still in the
//!   heap; it may run a little high (see [`Timers::take_due`]), which only
//!   makes a compaction come early.
//! * A callback leaves `slots` before it runs or is dropped, and the loop
//!   calls or drops it only after its borrow of the timers ended (the
//!   parent's *no re-entrancy* invariant): its code may add or cancel
//!   timers.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use slab::Slab;

use super::Callback;

/// Rebuild the timer heap when more than this many cancelled entries sit in
/// it *and* they are more than half of it (Tornado 4.5: 512 and half).
const TIMER_COMPACT_THRESHOLD: usize = 512;

/// How far off [`deadline_after`] puts a deadline whose exact instant
/// cannot be represented: 2³² s, 136 years, past any process's life.
const NEVER_DUE: Duration = Duration::from_secs(1 << 32);

/// `now + delay`, or `now` + 136 years when that sum does not fit an
/// [`Instant`] (`now + Duration::MAX` panics in `std`).
///
/// Every deadline built from a configured duration goes through here, so a
/// huge timeout (an embedder's `Duration::MAX` for "never", an operator's
/// `--header-timeout 18446744073709551615`) is a timer that never fires,
/// not a panic in a loop callback.
pub fn deadline_after(now: Instant, delay: Duration) -> Instant {
    now.checked_add(delay)
        .or_else(|| now.checked_add(NEVER_DUE))
        // Unreachable where std runs (an `Instant` spans ±2⁶³ s around the
        // clock's origin); `now` is only there to need no `unwrap`.
        .unwrap_or(now)
}

/// Names a timer so it can be cancelled with
/// [`IOLoop::remove_timeout`](super::IOLoop::remove_timeout).
///
/// A handle stays harmless after its timer fired or was cancelled: removing
/// it again does nothing, even if the slot was reused by another timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeoutHandle {
    /// Slot of the callback in `Timers::slots`.
    key: usize,
    /// Unique number of this timer; tells a reused slot apart.
    seq: u64,
}

/// One entry of the timer heap: ordered by deadline, then by insertion order
/// (Tornado's `(deadline, counter)` tie-break keeps same-deadline timers FIFO).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct TimerEntry {
    /// Negated ordering is done by `Reverse` at the heap; this is the deadline.
    deadline: Instant,
    /// Insertion counter: ties fire in the order they were added.
    seq: u64,
    /// Slot of the callback in `Timers::slots`.
    key: usize,
}

/// The timers of one loop.
///
/// The heap only orders deadlines; the callbacks live in `slots` so that
/// cancelling frees the closure at once. A cancelled timer leaves a small
/// entry in the heap (lazy deletion) that is skipped when popped, and the
/// heap is compacted when such entries pile up.
#[derive(Default)]
pub(super) struct Timers {
    /// Min-heap on (deadline, seq).
    heap: BinaryHeap<Reverse<TimerEntry>>,
    /// The live timers: (seq, callback). A heap entry whose seq differs from
    /// its slot's is stale.
    slots: Slab<(u64, Callback)>,
    /// Next seq to hand out.
    next_seq: u64,
    /// Heap entries whose timer was cancelled and not yet popped.
    cancelled: usize,
}

impl Timers {
    /// Schedule `callback` for `deadline`.
    pub(super) fn add(&mut self, deadline: Instant, callback: Callback) -> TimeoutHandle {
        let seq = self.next_seq;
        self.next_seq += 1;
        let key = self.slots.insert((seq, callback));
        self.heap.push(Reverse(TimerEntry { deadline, seq, key }));
        TimeoutHandle { key, seq }
    }

    /// Take a live timer's callback out. The caller drops it after releasing
    /// its borrow of the timers, because the closure's destructor may use
    /// the loop (even cancel another timer).
    pub(super) fn remove(&mut self, handle: TimeoutHandle) -> Option<Callback> {
        match self.slots.get(handle.key) {
            Some((seq, _)) if *seq == handle.seq => {
                let (_, callback) = self.slots.remove(handle.key);
                self.cancelled += 1;
                if self.cancelled > TIMER_COMPACT_THRESHOLD && self.cancelled > self.heap.len() / 2
                {
                    self.compact();
                }
                Some(callback)
            }
            _ => None,
        }
    }

    /// Drop heap entries of cancelled timers.
    fn compact(&mut self) {
        let slots = &self.slots;
        self.heap
            .retain(|Reverse(e)| matches!(slots.get(e.key), Some((seq, _)) if *seq == e.seq));
        self.cancelled = 0;
    }

    /// Compact, then give back the heap's and the slab's spare capacity
    /// (for [`IOLoop::shrink_to_fit`](super::IOLoop::shrink_to_fit)).
    /// Handles stay valid: a slab cannot shrink past its last live entry.
    pub(super) fn shrink_to_fit(&mut self) {
        self.compact();
        self.heap.shrink_to_fit();
        self.slots.shrink_to_fit();
    }

    /// Number of live timers.
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    fn is_live(&self, entry: &TimerEntry) -> bool {
        matches!(self.slots.get(entry.key), Some((seq, _)) if *seq == entry.seq)
    }

    /// Deadline of the first live timer (skipping and dropping stale entries).
    pub(super) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse(top)) = self.heap.peek() {
            if self.is_live(top) {
                return Some(top.deadline);
            }
            self.heap.pop();
            self.cancelled = self.cancelled.saturating_sub(1);
        }
        None
    }

    /// Pop every timer due at `now` off the heap, in order, as handles.
    /// Their callbacks stay in `slots` until [`Timers::take_due`], so code
    /// that runs earlier in the same pass can still cancel them (Tornado
    /// checks `timeout.callback is not None` just before running each one).
    pub(super) fn pop_due(&mut self, now: Instant, due: &mut Vec<TimeoutHandle>) {
        while let Some(Reverse(top)) = self.heap.peek() {
            if top.deadline > now && self.is_live(top) {
                break;
            }
            let Some(Reverse(entry)) = self.heap.pop() else {
                break;
            };
            if self.is_live(&entry) {
                due.push(TimeoutHandle {
                    key: entry.key,
                    seq: entry.seq,
                });
            } else {
                self.cancelled = self.cancelled.saturating_sub(1);
            }
        }
    }

    /// The callback of a timer popped by `pop_due`, unless it was cancelled
    /// since. (Such a cancel counted a heap entry that was already popped;
    /// that only makes the next compaction come a little early.)
    pub(super) fn take_due(&mut self, handle: TimeoutHandle) -> Option<Callback> {
        match self.slots.get(handle.key) {
            Some((seq, _)) if *seq == handle.seq => Some(self.slots.remove(handle.key).1),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;
    use crate::ioloop::IOLoop;

    fn noop() -> Callback {
        Box::new(|| {})
    }

    #[test]
    fn a_delay_past_what_an_instant_holds_is_a_timer_that_never_comes_due() {
        let now = Instant::now();
        let second = Duration::from_secs(1);
        assert_eq!(deadline_after(now, second), now + second);
        let never = deadline_after(now, Duration::MAX);
        assert_eq!(never, now + NEVER_DUE);

        // On a loop: `call_later(Duration::MAX)` neither panics nor fires,
        // and the loop goes on serving what is due.
        let ioloop = IOLoop::new().expect("loop");
        let fired = Rc::new(Cell::new(false));
        let f = Rc::clone(&fired);
        let handle = ioloop.call_later(Duration::MAX, move || f.set(true));
        let l = ioloop.clone();
        ioloop.call_later(Duration::from_millis(1), move || l.stop());
        ioloop.start();
        assert!(!fired.get());
        assert!(ioloop.remove_timeout(handle), "still pending");
    }

    #[test]
    fn cancelling_many_timers_compacts_the_heap() {
        let mut timers = Timers::default();
        let now = Instant::now();
        let handles: Vec<TimeoutHandle> = (0..2000u64)
            .map(|i| timers.add(now + Duration::from_millis(i), noop()))
            .collect();
        for h in &handles[..1500] {
            assert!(timers.remove(*h).is_some());
        }
        assert_eq!(timers.slots.len(), 500);
        // Compaction ran when cancellations passed 512 and half the heap,
        // so far fewer than 1500 stale entries remain.
        assert!(timers.heap.len() < 2000 - TIMER_COMPACT_THRESHOLD);
        assert!(timers.cancelled <= TIMER_COMPACT_THRESHOLD + 1);
        assert_eq!(timers.heap.len() - timers.cancelled, 500);
        // The next deadline skips the stale entries.
        assert_eq!(
            timers.next_deadline(),
            Some(now + Duration::from_millis(1500))
        );
    }

    #[test]
    fn pop_due_returns_live_timers_in_order_and_take_due_respects_cancels() {
        let mut timers = Timers::default();
        let now = Instant::now();
        let late = timers.add(now + Duration::from_secs(60), noop());
        let b = timers.add(now, noop());
        let a = timers.add(now - Duration::from_millis(1), noop());
        let cancelled = timers.add(now, noop());
        assert!(timers.remove(cancelled).is_some());
        let mut due = Vec::new();
        timers.pop_due(now, &mut due);
        assert_eq!(due, vec![a, b]);
        // Cancelled after being popped: take_due no longer yields it.
        assert!(timers.remove(b).is_some());
        assert!(timers.take_due(a).is_some());
        assert!(timers.take_due(b).is_none());
        assert_eq!(timers.slots.len(), 1);
        assert_eq!(timers.next_deadline(), Some(now + Duration::from_secs(60)));
        assert!(timers.remove(late).is_some());
        assert_eq!(timers.next_deadline(), None);
    }

    #[test]
    fn a_stale_handle_does_not_cancel_the_timer_that_reused_its_slot() {
        let mut timers = Timers::default();
        let now = Instant::now();
        let old = timers.add(now, noop());
        assert!(timers.remove(old).is_some());
        let new = timers.add(now, noop());
        assert_eq!(old.key, new.key);
        assert!(timers.remove(old).is_none());
        assert_eq!(timers.slots.len(), 1);
    }
}
