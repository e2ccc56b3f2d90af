//! [`PeriodicCallback`]: run a function every period on the current loop,
//! skipping runs the loop was too busy to make.
//!
//! Mirrors `PeriodicCallback` in Tornado's `tornado/ioloop.py`: each run
//! schedules the next with `call_at` on a fixed grid (the first run, then
//! every period after it), and a loop that fell behind jumps to the first
//! grid point after now instead of firing a burst to catch up.
//!
//! # Invariants
//!
//! * The pending timer holds the state weakly: dropping the
//!   `PeriodicCallback` stops it, and a timer that fires after that finds
//!   nothing and does nothing.
//! * The user's function runs with no borrow held but its own `RefCell`
//!   (the parent's *no re-entrancy* invariant), so it may call `stop`,
//!   `start` or anything on the loop; `schedule` checks afterwards whether
//!   it did.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::{deadline_after, IOLoop, TimeoutHandle};

/// Run a callback every `period` (Tornado's `PeriodicCallback`).
///
/// If the loop falls behind, missed runs are skipped so the schedule stays
/// on its grid instead of firing a burst to catch up.
pub struct PeriodicCallback {
    /// Shared with the timer closure, which reschedules itself.
    state: Rc<PeriodicState>,
}

/// State of a [`PeriodicCallback`], shared with its pending timer.
struct PeriodicState {
    /// The loop the timer lives on.
    ioloop: IOLoop,
    /// The user's function.
    callback: RefCell<Box<dyn FnMut()>>,
    /// Time between runs.
    period: Duration,
    /// When the next run is due.
    next_deadline: Cell<Instant>,
    /// The pending timer, if any.
    handle: Cell<Option<TimeoutHandle>>,
    /// Between `start` and `stop`; checked after each run because the
    /// callback itself may call `stop`.
    active: Cell<bool>,
}

impl PeriodicCallback {
    /// A periodic callback on the current loop; call [`start`](Self::start).
    pub fn new(period: Duration, callback: impl FnMut() + 'static) -> PeriodicCallback {
        let ioloop = IOLoop::current();
        let now = ioloop.time();
        PeriodicCallback {
            state: Rc::new(PeriodicState {
                ioloop,
                callback: RefCell::new(Box::new(callback)),
                period: period.max(Duration::from_millis(1)),
                next_deadline: Cell::new(now),
                handle: Cell::new(None),
                active: Cell::new(false),
            }),
        }
    }

    /// Start running every period, the first run one period from now.
    pub fn start(&self) {
        if self.state.active.replace(true) {
            return;
        }
        let st = &self.state;
        st.next_deadline
            .set(deadline_after(st.ioloop.time(), st.period));
        Self::schedule(&self.state);
    }

    /// Stop; the pending run is cancelled.
    pub fn stop(&self) {
        self.state.active.set(false);
        if let Some(h) = self.state.handle.take() {
            self.state.ioloop.remove_timeout(h);
        }
    }

    /// True between `start` and `stop`.
    pub fn is_running(&self) -> bool {
        self.state.active.get()
    }

    /// Queue the next run at `next_deadline`; the run queues the one after.
    fn schedule(state: &Rc<PeriodicState>) {
        let weak = Rc::downgrade(state);
        let handle = state.ioloop.call_at(state.next_deadline.get(), move || {
            let Some(state) = weak.upgrade() else { return };
            state.handle.set(None);
            match state.callback.try_borrow_mut() {
                Ok(mut cb) => (*cb)(),
                Err(_) => log::error!("PeriodicCallback re-entered"),
            }
            // It may have been stopped (or stopped and restarted) from inside.
            if !state.active.get() || state.handle.get().is_some() {
                return;
            }
            // Skip missed runs: next = first grid point after now.
            let now = state.ioloop.time();
            let mut next = deadline_after(state.next_deadline.get(), state.period);
            if next <= now {
                let behind = now.duration_since(next).as_nanos();
                let periods = behind / state.period.as_nanos() + 1;
                let skip = u32::try_from(periods).unwrap_or(u32::MAX);
                next = deadline_after(next, state.period.saturating_mul(skip));
            }
            state.next_deadline.set(next);
            PeriodicCallback::schedule(&state);
        });
        state.handle.set(Some(handle));
    }
}

impl Drop for PeriodicCallback {
    fn drop(&mut self) {
        self.stop();
    }
}
