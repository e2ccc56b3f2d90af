//! [`IterationClock`]: the time as of the current loop iteration, read once
//! per poll instead of once per request.
//!
//! Part of the reactor in `tornado/ioloop.py`, though Tornado has no such
//! cache: its `IOLoop.time()` reads the clock on every call (as
//! [`IOLoop::time`](super::IOLoop::time) does here). The loop sets this
//! clock in [`IOLoop::start`](super::IOLoop::start), at the start of each
//! pass and when each poll returns, and clears it when `start` returns; so
//! off a loop thread, or outside `start`, it is the real clock.

use std::cell::Cell;
use std::time::{Instant, SystemTime};

/// The clock as of the current loop iteration: read when the poll returned
/// (and at the start of each pass), not at each call.
///
/// The HTTP layer stamps every request (arrival, idle-since, the `Date`
/// header) with it: at 500 k requests/s, three clock reads per request are
/// a measurable share of the CPU, and all events of one poll arrived at
/// the same instant as far as anyone can tell. Code that needs a precise
/// interval reads [`Instant::now`] itself. Off a loop thread (or before the
/// first iteration) it falls back to the real clock.
pub struct IterationClock;

thread_local! {
    /// (monotonic, wall clock) of this thread's loop iteration.
    static ITERATION_CLOCK: Cell<Option<(Instant, SystemTime)>> =
        const { Cell::new(None) };
}

impl IterationClock {
    /// Start a new iteration at `now` (the wall clock is read here).
    pub(super) fn set(now: Instant) {
        ITERATION_CLOCK.with(|c| c.set(Some((now, SystemTime::now()))));
    }

    /// The loop stopped: fall back to the real clock until it runs again.
    pub(super) fn clear() {
        ITERATION_CLOCK.with(|c| c.set(None));
    }

    /// Monotonic time of this iteration.
    pub fn now() -> Instant {
        ITERATION_CLOCK
            .with(Cell::get)
            .map_or_else(Instant::now, |(now, _)| now)
    }

    /// Wall-clock time of this iteration (for `Date` headers).
    pub fn system_now() -> SystemTime {
        ITERATION_CLOCK
            .with(Cell::get)
            .map_or_else(SystemTime::now, |(_, now)| now)
    }
}
