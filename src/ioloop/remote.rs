//! The one door into a loop from other threads: [`IOLoopHandle`], and the
//! queue and waker behind it.
//!
//! Mirrors the thread-safe `add_callback` of Tornado's `tornado/ioloop.py`
//! (4.5 `PollIOLoop`): other threads append to a list under a lock and
//! write to the loop's waker pipe (`_waker.wake()`) so that a loop asleep in
//! poll wakes up. The loop's side is `IOLoop::drain_remote`, run when the
//! waker's token comes out of a poll; the executor hands its results back
//! through the same queue.
//!
//! # Invariants
//!
//! * The loop empties the whole queue after every wake-up ([`Remote::take_all`]),
//!   so a non-empty queue means a wake-up is already on its way:
//!   [`Remote::push`] wakes the loop only when it finds the queue empty.
//! * A poisoned lock is used as it is: the lock is held only to push onto
//!   or take the `Vec`, which leaves it whole either way.

use std::any::Any;
use std::sync::{Arc, Mutex, MutexGuard};

use mio::Waker;

/// What another thread can hand to the loop.
pub(super) enum RemoteTask {
    /// A plain callback from [`IOLoopHandle::add_callback`].
    Callback(Box<dyn FnOnce() + Send>),
    /// The result of executor job `key`, for the `done` closure kept on the loop.
    ExecutorResult {
        key: usize,
        value: Box<dyn Any + Send>,
    },
    /// Executor job `key` panicked; its `done` closure is dropped uncalled.
    ExecutorPanicked { key: usize },
}

/// The part of the loop other threads may touch.
pub(super) struct Remote {
    /// Tasks waiting to be moved into the loop's callback queue.
    queue: Mutex<Vec<RemoteTask>>,
    /// Interrupts the poll; registered under
    /// [`WAKER_TOKEN`](super::WAKER_TOKEN).
    waker: Waker,
}

impl Remote {
    /// An empty queue that wakes the poll through `waker`.
    pub(super) fn new(waker: Waker) -> Remote {
        Remote {
            queue: Mutex::new(Vec::new()),
            waker,
        }
    }

    /// Queue `task` for the loop, waking it if it may be asleep.
    pub(super) fn push(&self, task: RemoteTask) {
        let was_empty = {
            let mut queue = self.lock();
            let was_empty = queue.is_empty();
            queue.push(task);
            was_empty
        };
        // Invariant: the loop empties the whole queue after every wake-up, so
        // a non-empty queue means a wake-up is already on its way.
        if was_empty {
            if let Err(e) = self.waker.wake() {
                log::error!("failed to wake the IOLoop: {e}");
            }
        }
    }

    /// Everything queued so far, in order (the loop's side, after a wake-up).
    pub(super) fn take_all(&self) -> Vec<RemoteTask> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, Vec<RemoteTask>> {
        match self.queue.lock() {
            Ok(q) => q,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// A `Send + Sync` handle to an [`IOLoop`](super::IOLoop), for other threads.
///
/// Its [`add_callback`](IOLoopHandle::add_callback) is the only thread-safe
/// entry point of the loop (Tornado: `add_callback` called from another
/// thread, which wakes the loop through its waker).
#[derive(Clone)]
pub struct IOLoopHandle {
    remote: Arc<Remote>,
}

impl IOLoopHandle {
    /// A handle onto the loop that owns `remote`.
    pub(super) fn new(remote: Arc<Remote>) -> IOLoopHandle {
        IOLoopHandle { remote }
    }

    /// Run `callback` on the loop's thread on its next iteration, waking the
    /// loop if it is sleeping in poll.
    pub fn add_callback(&self, callback: impl FnOnce() + Send + 'static) {
        self.remote.push(RemoteTask::Callback(Box::new(callback)));
    }
}
