//! The reactor: one thread, one loop, callbacks for everything.
//!
//! Mirrors Tornado's `tornado/ioloop.py` — specifically the hand-written
//! `PollIOLoop` of Tornado 4.5, which is the classic design this crate rebuilds
//! on top of [`mio`].
//!
//! # The whole contract on one screen
//!
//! | call                                   | what it does                                             |
//! |----------------------------------------|----------------------------------------------------------|
//! | [`IOLoop::add_handler`]                | register a socket; `handler(Ready)` runs on readiness    |
//! | [`IOLoop::update_handler`]             | change the interest of a registered socket               |
//! | [`IOLoop::remove_handler`]             | forget a socket (deregister it first, or drop it)        |
//! | [`IOLoop::add_callback`]               | run `f` on the next iteration (FIFO, never re-entrantly) |
//! | [`IOLoop::call_later`] / [`IOLoop::call_at`] | run `f` once a deadline passes; returns a handle   |
//! | [`IOLoop::remove_timeout`]             | cancel a timer: it never fires, its closure is freed now |
//! | [`IOLoop::add_end_of_iteration`]       | run `f` after this iteration's callbacks, before polling |
//! | [`IOLoop::run_in_executor`]            | run `work` on a worker thread, `done(result)` on the loop |
//! | [`IOLoop::handle`] → [`IOLoopHandle`]  | a `Send` handle whose `add_callback` wakes the loop      |
//! | [`IOLoop::start`] / [`IOLoop::stop`]   | run until stopped                                        |
//! | [`PeriodicCallback`]                   | run `f` every `period`, skipping missed runs             |
//! | [`IterationClock::now`]                | the time this iteration's poll returned (no clock call)  |
//!
//! # One iteration of [`IOLoop::start`]
//!
//! 1. Count the callbacks queued *now*. Callbacks added while these run wait
//!    for the next iteration, so a callback that re-adds itself cannot starve
//!    I/O (Tornado 4.5 does the same).
//! 2. Pop every timer whose deadline has passed into a list, before running
//!    anything: a timer added by a callback in this pass cannot run in it.
//!    (A timer in the list that is cancelled before its turn does not run.)
//! 3. Run the counted callbacks, then the due timers.
//! 4. Run the end-of-iteration hooks. This is Redis's `beforeSleep`: IOStream
//!    uses it to write everything a pass produced in one `write` per socket.
//! 5. Poll. The timeout is zero if callbacks are waiting, else the time to the
//!    first timer, capped at [`MAX_POLL_TIMEOUT`].
//! 6. Dispatch each event to the handler registered under its token.
//!
//! # Invariants
//!
//! * **Nothing blocks.** Blocking or CPU-heavy work goes to
//!   [`IOLoop::run_in_executor`]; its result comes back as a callback.
//! * **No re-entrancy.** The loop never holds a borrow of its own tables while
//!   it runs user code: a handler or callback is taken out (or its `Rc`
//!   cloned) and the borrow is released before the call. So any callback may
//!   call any method of the loop, including removing its own handler.
//! * **Edge-triggered readiness.** mio reports a readiness *change* once.
//!   A handler must read (or write) until `WouldBlock`, or remember that it
//!   stopped early, or it may never be woken for that socket again.
//! * **Spurious events are allowed.** Tokens are slab keys and are reused:
//!   an event from the same poll batch may name a token whose socket was just
//!   removed and replaced. The new owner then sees one readiness it did not
//!   earn, tries to read, gets `WouldBlock`, and nothing happens. Every handler
//!   must tolerate that (mio documents the same about its own events).
//! * **A panic in a callback is logged and contained** (Tornado logs the
//!   exception and goes on); other connections are not affected.
//!
//! # Where the parts live
//!
//! | file                     | what it holds                                                         |
//! |--------------------------|-----------------------------------------------------------------------|
//! | `src/ioloop.rs`          | [`IOLoop`]: handlers, callbacks, hooks, `start`/`stop`, executor glue |
//! | `src/ioloop/timers.rs`   | the timer heap, [`TimeoutHandle`], [`deadline_after`]                 |
//! | `src/ioloop/clock.rs`    | [`IterationClock`], the per-iteration time                            |
//! | `src/ioloop/periodic.rs` | [`PeriodicCallback`]                                                  |
//! | `src/ioloop/remote.rs`   | [`IOLoopHandle`] and the cross-thread queue behind it                 |
//! | `src/ioloop/executor.rs` | the worker pool behind [`IOLoop::run_in_executor`]                    |

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::event::Source;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use slab::Slab;

mod clock;
mod executor;
mod periodic;
mod remote;
mod timers;

pub use clock::IterationClock;
pub use executor::DEFAULT_KEEP_ALIVE;
use executor::{Job, QueueEnd, WorkerPool};
pub use periodic::PeriodicCallback;
pub use remote::IOLoopHandle;
use remote::{Remote, RemoteTask};
use timers::Timers;
pub use timers::{deadline_after, TimeoutHandle};

/// Longest the loop sleeps in one poll when nothing is scheduled
/// (Tornado's `_POLL_TIMEOUT` is 3600 s).
pub const MAX_POLL_TIMEOUT: Duration = Duration::from_secs(3600);

/// How many events one poll may return. More simply wait for the next poll.
const EVENTS_CAPACITY: usize = 1024;

/// Token of the [`Waker`] that other threads use to interrupt the poll.
/// Slab keys never get this large.
const WAKER_TOKEN: Token = Token(usize::MAX);

/// Most worker threads [`IOLoop::run_in_executor`] runs at once by default.
pub const DEFAULT_EXECUTOR_THREADS: usize = 4;

/// A callback queued on the loop.
type Callback = Box<dyn FnOnce()>;

/// Work for the end of an iteration that already lives behind an `Rc`: an
/// IOStream's pending flush. Queuing it clones the `Rc` rather than boxing
/// a closure around it, so a broadcast that dirties 10 000 streams makes no
/// allocation per stream here.
pub(crate) trait EndOfIteration {
    /// Run once, at the end of the iteration it was queued in.
    fn end_of_iteration(self: Rc<Self>);
}

/// A queued end-of-iteration hook, in the order it was added.
enum Hook {
    /// From [`IOLoop::add_end_of_iteration`].
    Boxed(Callback),
    /// From [`IOLoop::add_end_of_iteration_rc`].
    Shared(Rc<dyn EndOfIteration>),
}

/// Receives an executor job's result on the loop (boxed as `Any` to cross
/// the thread boundary, downcast back inside).
type ResultCallback = Box<dyn FnOnce(Box<dyn Any + Send>)>;

/// A socket's readiness handler that already lives behind an `Rc`: an
/// IOStream. The loop keeps it *weakly* (the stream's owners decide when it
/// dies), so registering makes no allocation of its own, and dispatching
/// an event touches the stream's own memory and nothing else of the
/// connection's: one cold cache line fewer per event with 1 000 busy
/// connections than a boxed closure holding the same `Weak`.
pub(crate) trait OnReady {
    /// The socket under this handler's token became ready.
    fn on_ready(self: Rc<Self>, ready: Ready);
}

/// A handler registered for a socket.
enum Handler {
    /// From [`IOLoop::add_handler`]. The `RefCell` turns a re-entrant call
    /// of the same `FnMut` into a logged error instead of aliasing.
    Boxed(Rc<RefCell<dyn FnMut(Ready)>>),
    /// From [`IOLoop::add_handler_rc`]; gone once its owners dropped it.
    Shared(Weak<dyn OnReady>),
}

/// A handler taken out of the table for one event, so the table is not
/// borrowed while it runs.
enum Dispatch {
    /// A boxed closure.
    Boxed(Rc<RefCell<dyn FnMut(Ready)>>),
    /// A live shared handler.
    Shared(Rc<dyn OnReady>),
}

impl Handler {
    /// What to call for an event, if anything is still there to call.
    fn for_dispatch(&self) -> Option<Dispatch> {
        match self {
            Handler::Boxed(h) => Some(Dispatch::Boxed(Rc::clone(h))),
            Handler::Shared(h) => h.upgrade().map(Dispatch::Shared),
        }
    }
}

/// What a poll said about one socket. Readable and writable are the only
/// portable facts; `hup` and `error` are hints (mio says the same).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// Data (or EOF) can be read without blocking.
    pub readable: bool,
    /// Data can be written without blocking (also: a connect completed).
    pub writable: bool,
    /// The peer closed its side (read or write closed).
    pub hup: bool,
    /// The socket has a pending error (read it with `take_error`).
    pub error: bool,
}

impl Ready {
    fn from_event(event: &mio::event::Event) -> Ready {
        Ready {
            readable: event.is_readable(),
            writable: event.is_writable(),
            hup: event.is_read_closed() || event.is_write_closed(),
            error: event.is_error(),
        }
    }
}

/// The loop's state. Every field is behind `Cell`/`RefCell` because the loop
/// is shared (`Rc`) by everything that runs on it.
struct Inner {
    /// The OS selector. Borrowed only while polling, never while user code runs.
    poll: RefCell<Poll>,
    /// A clone of the poll's registry, so (de)registering never needs `poll`.
    registry: Registry,
    /// Socket handlers by token (= slab key).
    handlers: RefCell<Slab<Handler>>,
    /// Callbacks for the next iteration, FIFO.
    callbacks: RefCell<VecDeque<Callback>>,
    /// Hooks run once after this iteration's callbacks, before polling.
    /// Keeps its room between iterations (a broadcast queues one hook per
    /// member every time); the trimmer's `shrink` gives it back.
    end_of_iteration: RefCell<Vec<Hook>>,
    /// Timers (call_later / call_at).
    timers: RefCell<Timers>,
    /// What other threads can reach.
    remote: Arc<Remote>,
    /// `done` closures of executor jobs still running, by job key.
    pending_results: RefCell<Slab<ResultCallback>>,
    /// The worker pool; its threads start on demand and exit when idle.
    executor: WorkerPool,
    /// True while `start` runs.
    running: Cell<bool>,
    /// Set by `stop`; makes `start` return after the current iteration (or at
    /// once, if `stop` came before `start`, as in Tornado).
    stopping: Cell<bool>,
    /// Warn when a single callback or handler runs longer than this
    /// (Tornado 4.5's `set_blocking_log_threshold`).
    blocking_threshold: Cell<Option<Duration>>,
}

thread_local! {
    /// The loop [`IOLoop::current`] returns on this thread.
    static CURRENT: RefCell<Option<IOLoop>> = const { RefCell::new(None) };
}

/// The event loop. Cheap to clone: every clone is the same loop.
///
/// An `IOLoop` belongs to the thread that created it (it is not `Send`); to
/// reach it from another thread use [`IOLoop::handle`].
#[derive(Clone)]
pub struct IOLoop {
    inner: Rc<Inner>,
}

impl IOLoop {
    /// Create a loop. If this thread has no current loop yet, the new one
    /// becomes current (Tornado 5+ does the same).
    pub fn new() -> io::Result<IOLoop> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let waker = Waker::new(poll.registry(), WAKER_TOKEN)?;
        let ioloop = IOLoop {
            inner: Rc::new(Inner {
                poll: RefCell::new(poll),
                registry,
                handlers: RefCell::new(Slab::new()),
                callbacks: RefCell::new(VecDeque::new()),
                end_of_iteration: RefCell::new(Vec::new()),
                timers: RefCell::new(Timers::default()),
                remote: Arc::new(Remote::new(waker)),
                pending_results: RefCell::new(Slab::new()),
                executor: WorkerPool::new(DEFAULT_EXECUTOR_THREADS, DEFAULT_KEEP_ALIVE),
                running: Cell::new(false),
                stopping: Cell::new(false),
                blocking_threshold: Cell::new(None),
            }),
        };
        CURRENT.with(|c| {
            let mut current = c.borrow_mut();
            if current.is_none() {
                *current = Some(ioloop.clone());
            }
        });
        Ok(ioloop)
    }

    /// The current loop of this thread, created on first use.
    ///
    /// # Panics
    /// If the OS refuses to create a poller (out of file descriptors at
    /// start-up); there is nothing useful to do without one.
    pub fn current() -> IOLoop {
        if let Some(l) = CURRENT.with(|c| c.borrow().clone()) {
            return l;
        }
        match IOLoop::new() {
            Ok(l) => {
                l.make_current();
                l
            }
            Err(e) => panic!("cannot create an IOLoop: {e}"),
        }
    }

    /// This thread's current loop if it has one; unlike
    /// [`IOLoop::current`] it never creates one, and it answers `None`
    /// rather than panic while the thread is being torn down. For code that
    /// may run on any thread (a log writer).
    pub fn try_current() -> Option<IOLoop> {
        CURRENT
            .try_with(|c| c.try_borrow().ok().and_then(|l| l.clone()))
            .ok()
            .flatten()
    }

    /// Make this loop the one [`IOLoop::current`] returns on this thread.
    pub fn make_current(&self) {
        CURRENT.with(|c| *c.borrow_mut() = Some(self.clone()));
    }

    /// Forget this thread's current loop (so it can be dropped).
    pub fn clear_current() {
        CURRENT.with(|c| c.borrow_mut().take());
    }

    /// A `Send` handle for waking this loop from other threads.
    pub fn handle(&self) -> IOLoopHandle {
        IOLoopHandle::new(Arc::clone(&self.inner.remote))
    }

    /// The loop's clock (monotonic, like `time.monotonic` in Tornado 6).
    pub fn time(&self) -> Instant {
        Instant::now()
    }

    /// Register `source` for `interest`; `handler` runs with what was ready.
    ///
    /// Returns the token under which the source is registered. The source
    /// stays owned by the caller, who must `deregister` it (or drop it, which
    /// closes the fd) and call [`IOLoop::remove_handler`].
    pub fn add_handler<S, F>(
        &self,
        source: &mut S,
        interest: Interest,
        handler: F,
    ) -> io::Result<Token>
    where
        S: Source + ?Sized,
        F: FnMut(Ready) + 'static,
    {
        self.register_handler(
            source,
            interest,
            Handler::Boxed(Rc::new(RefCell::new(handler))),
        )
    }

    /// [`IOLoop::add_handler`] for a handler that already lives behind an
    /// `Rc` (an IOStream): the loop holds it weakly and calls
    /// [`OnReady::on_ready`] while something else keeps it alive. The
    /// owner still deregisters and calls [`IOLoop::remove_handler`].
    pub(crate) fn add_handler_rc<S: Source + ?Sized>(
        &self,
        source: &mut S,
        interest: Interest,
        handler: Weak<dyn OnReady>,
    ) -> io::Result<Token> {
        self.register_handler(source, interest, Handler::Shared(handler))
    }

    /// Put `handler` in the table and register `source` under its key.
    fn register_handler<S: Source + ?Sized>(
        &self,
        source: &mut S,
        interest: Interest,
        handler: Handler,
    ) -> io::Result<Token> {
        let mut handlers = self.inner.handlers.borrow_mut();
        let entry = handlers.vacant_entry();
        let token = Token(entry.key());
        self.inner.registry.register(source, token, interest)?;
        entry.insert(handler);
        Ok(token)
    }

    /// Change what a registered source is watched for.
    pub fn update_handler<S: Source + ?Sized>(
        &self,
        source: &mut S,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.inner.registry.reregister(source, token, interest)
    }

    /// Deregister `source` from the poller (before dropping or handing it on).
    pub fn deregister<S: Source + ?Sized>(&self, source: &mut S) -> io::Result<()> {
        self.inner.registry.deregister(source)
    }

    /// Forget the handler under `token`. Events for it that are already in
    /// this poll batch are dropped (or reach a new owner of the token as a
    /// spurious event; see the module docs).
    pub fn remove_handler(&self, token: Token) {
        let removed = self.inner.handlers.borrow_mut().try_remove(token.0);
        // The handler (and what it captured) is dropped here, after the
        // borrow of the table ended, so its destructor may use the loop.
        drop(removed);
    }

    /// Number of registered socket handlers (for metrics and leak tests).
    pub fn handler_count(&self) -> usize {
        self.inner.handlers.borrow().len()
    }

    /// Give back the capacity of the loop's tables (handlers, timers,
    /// callback queues) beyond what is in use, so that a crowd of
    /// connections that has gone does not keep its slots. Tokens and timer
    /// handles stay valid (a slab cannot shrink past its last live entry).
    /// For an occasional clean-up after a mass close (`apps::memory`), not
    /// the hot path: it copies the tables.
    pub fn shrink_to_fit(&self) {
        let inner = &self.inner;
        // try_borrow: called from a callback, where none of these is
        // borrowed today; if one ever is, skipping it is harmless.
        if let Ok(mut handlers) = inner.handlers.try_borrow_mut() {
            handlers.shrink_to_fit();
        }
        if let Ok(mut timers) = inner.timers.try_borrow_mut() {
            timers.shrink_to_fit();
        }
        if let Ok(mut callbacks) = inner.callbacks.try_borrow_mut() {
            callbacks.shrink_to_fit();
        }
        if let Ok(mut hooks) = inner.end_of_iteration.try_borrow_mut() {
            hooks.shrink_to_fit();
        }
    }

    /// Run `callback` on the next iteration of the loop.
    ///
    /// Callbacks run in the order they were added, never inside the caller:
    /// this is what makes re-entrancy impossible. Only for the loop's own
    /// thread; other threads use [`IOLoop::handle`].
    pub fn add_callback(&self, callback: impl FnOnce() + 'static) {
        self.inner
            .callbacks
            .borrow_mut()
            .push_back(Box::new(callback));
    }

    /// Run `hook` once after the callbacks of the current iteration and
    /// before the next poll (Redis's `beforeSleep`). IOStream flushes its
    /// write buffers here so that every write a pass produced for a socket
    /// leaves in one system call.
    pub fn add_end_of_iteration(&self, hook: impl FnOnce() + 'static) {
        self.inner
            .end_of_iteration
            .borrow_mut()
            .push(Hook::Boxed(Box::new(hook)));
    }

    /// [`add_end_of_iteration`](Self::add_end_of_iteration) for a hook that
    /// is already an `Rc` (no allocation). Hooks of both kinds run in the
    /// order they were added.
    pub(crate) fn add_end_of_iteration_rc(&self, hook: Rc<dyn EndOfIteration>) {
        self.inner
            .end_of_iteration
            .borrow_mut()
            .push(Hook::Shared(hook));
    }

    /// Run `callback` once, `delay` from now. See [`IOLoop::call_at`].
    /// A delay too long for an [`Instant`] (`Duration::MAX` meant as
    /// "never") is a timer that never comes due ([`deadline_after`]).
    pub fn call_later(&self, delay: Duration, callback: impl FnOnce() + 'static) -> TimeoutHandle {
        self.call_at(deadline_after(self.time(), delay), callback)
    }

    /// Run `callback` once `deadline` has passed. Timers with equal
    /// deadlines fire in the order they were added.
    pub fn call_at(&self, deadline: Instant, callback: impl FnOnce() + 'static) -> TimeoutHandle {
        self.inner
            .timers
            .borrow_mut()
            .add(deadline, Box::new(callback))
    }

    /// Cancel a timer. It never fires, and its closure is dropped now.
    /// Returns false if it had already fired or been cancelled.
    pub fn remove_timeout(&self, handle: TimeoutHandle) -> bool {
        let removed = self.inner.timers.borrow_mut().remove(handle);
        // Dropped here, after the borrow ended: its destructor may use the loop.
        removed.is_some()
    }

    /// Number of live timers (for metrics and leak tests).
    pub fn timer_count(&self) -> usize {
        self.inner.timers.borrow().len()
    }

    /// Set the most worker threads [`IOLoop::run_in_executor`] runs at once
    /// (at least one; default [`DEFAULT_EXECUTOR_THREADS`]). Threads start
    /// only when a job finds none idle, so this is a ceiling, not a count.
    pub fn set_executor_threads(&self, threads: usize) {
        self.inner.executor.set_max_threads(threads);
    }

    /// Set how long an idle worker thread waits for a job before it exits
    /// (default [`DEFAULT_KEEP_ALIVE`], 10 s).
    pub fn set_executor_keep_alive(&self, keep_alive: Duration) {
        self.inner.executor.set_keep_alive(keep_alive);
    }

    /// Worker threads alive now: zero until the first
    /// [`IOLoop::run_in_executor`], and again once they have been idle for
    /// the keep-alive time.
    pub fn executor_thread_count(&self) -> usize {
        self.inner.executor.threads()
    }

    /// Run `work` on a worker thread; when it returns, run `done(result)` on
    /// this loop. The classic pattern for blocking work (password hashing,
    /// disk writes, a deliberately blocking client): the thread does the slow
    /// part and hands the result back through the thread-safe
    /// `add_callback`.
    ///
    /// `done` need not be `Send`: it never leaves this thread; only `work`
    /// and its result cross. If `work` panics, the panic is logged and `done`
    /// is dropped without being called.
    pub fn run_in_executor<T, W, D>(&self, work: W, done: D)
    where
        T: Send + 'static,
        W: FnOnce() -> T + Send + 'static,
        D: FnOnce(T) + 'static,
    {
        self.submit_to_executor(work, done, QueueEnd::Back);
    }

    /// [`run_in_executor`](Self::run_in_executor), but ahead of every job
    /// already queued: for short work someone is waiting on (a password
    /// hash at login) that must not wait behind a queue of long blocking
    /// calls. It still waits for a thread when every one is busy and the
    /// pool is at its ceiling.
    pub fn run_in_executor_first<T, W, D>(&self, work: W, done: D)
    where
        T: Send + 'static,
        W: FnOnce() -> T + Send + 'static,
        D: FnOnce(T) + 'static,
    {
        self.submit_to_executor(work, done, QueueEnd::Front);
    }

    fn submit_to_executor<T, W, D>(&self, work: W, done: D, end: QueueEnd)
    where
        T: Send + 'static,
        W: FnOnce() -> T + Send + 'static,
        D: FnOnce(T) + 'static,
    {
        let key = self.inner.pending_results.borrow_mut().insert(Box::new(
            move |value: Box<dyn Any + Send>| {
                if let Ok(value) = value.downcast::<T>() {
                    done(*value);
                }
            },
        ));
        let remote = Arc::clone(&self.inner.remote);
        let job: Job = Box::new(move || match catch_unwind(AssertUnwindSafe(work)) {
            Ok(value) => remote.push(RemoteTask::ExecutorResult {
                key,
                value: Box::new(value),
            }),
            Err(_) => {
                log::error!("a job on the worker pool panicked; its callback is dropped");
                remote.push(RemoteTask::ExecutorPanicked { key });
            }
        });
        if self.inner.executor.submit_at(job, end).is_err() {
            let done = self.inner.pending_results.borrow_mut().try_remove(key);
            drop(done);
        }
    }

    /// Log a warning whenever a single callback, timer or handler runs longer
    /// than `threshold` — the reactor's "you blocked the loop" alarm. `None`
    /// turns it off (the default: it costs two clock reads per callback).
    pub fn set_blocking_log_threshold(&self, threshold: Option<Duration>) {
        self.inner.blocking_threshold.set(threshold);
    }

    /// Stop the loop after the current iteration. If the loop is not running,
    /// the next `start` returns at once.
    pub fn stop(&self) {
        self.inner.stopping.set(true);
        // From inside the loop no wake-up is needed; from a callback that is
        // about to sleep, the stopping flag is checked before polling.
    }

    /// True while [`IOLoop::start`] runs.
    pub fn is_running(&self) -> bool {
        self.inner.running.get()
    }

    /// Run the loop until [`IOLoop::stop`] is called.
    ///
    /// # Panics
    /// If the loop is already running (Tornado raises `RuntimeError`).
    pub fn start(&self) {
        assert!(!self.inner.running.get(), "IOLoop is already running");
        if self.inner.stopping.replace(false) {
            return;
        }
        self.inner.running.set(true);
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        let mut due: Vec<TimeoutHandle> = Vec::new();
        loop {
            // 1. Callbacks queued before this pass; later ones wait.
            let ncallbacks = self.inner.callbacks.borrow().len();
            // 2. Due timers, taken out before anything runs.
            let now = self.time();
            IterationClock::set(now);
            self.inner.timers.borrow_mut().pop_due(now, &mut due);
            // 3. Run them.
            for _ in 0..ncallbacks {
                let cb = self.inner.callbacks.borrow_mut().pop_front();
                match cb {
                    Some(cb) => self.run_guarded(cb),
                    None => break,
                }
            }
            for handle in due.drain(..) {
                // Taken one at a time: an earlier callback or timer of this
                // pass may have cancelled it, and then it must not run.
                let cb = self.inner.timers.borrow_mut().take_due(handle);
                if let Some(cb) = cb {
                    self.run_guarded(cb);
                }
            }
            // 4. End-of-iteration hooks (write flushing).
            self.run_end_of_iteration();
            if self.inner.stopping.get() {
                break;
            }
            // 5. Poll.
            let timeout = if !self.inner.callbacks.borrow().is_empty() {
                Duration::ZERO
            } else {
                match self.inner.timers.borrow_mut().next_deadline() {
                    Some(deadline) => deadline
                        .saturating_duration_since(self.time())
                        .min(MAX_POLL_TIMEOUT),
                    None => MAX_POLL_TIMEOUT,
                }
            };
            let polled = self
                .inner
                .poll
                .borrow_mut()
                .poll(&mut events, Some(timeout));
            if let Err(e) = polled {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("poll failed: {e}");
                }
                continue;
            }
            IterationClock::set(self.time());
            // 6. Dispatch.
            for event in events.iter() {
                let token = event.token();
                if token == WAKER_TOKEN {
                    self.drain_remote();
                    continue;
                }
                // Clone the handler out so the table is not borrowed while
                // it runs (it may add or remove handlers, even itself).
                let handler = self
                    .inner
                    .handlers
                    .borrow()
                    .get(token.0)
                    .and_then(Handler::for_dispatch);
                let ready = Ready::from_event(event);
                match handler {
                    Some(Dispatch::Boxed(handler)) => {
                        self.run_guarded(move || match handler.try_borrow_mut() {
                            Ok(mut h) => (*h)(ready),
                            Err(_) => {
                                log::error!("handler for {token:?} re-entered; event dropped")
                            }
                        })
                    }
                    Some(Dispatch::Shared(handler)) => {
                        self.run_guarded(move || handler.on_ready(ready))
                    }
                    None => {}
                }
            }
        }
        self.inner.running.set(false);
        self.inner.stopping.set(false);
        IterationClock::clear();
    }

    /// Run the end-of-iteration hooks now instead of when this iteration
    /// ends. Only for code that is about to block the loop's thread on
    /// purpose (the blocking [`HTTPClient`](crate::httpclient::HTTPClient)):
    /// output that earlier callbacks of this iteration already produced —
    /// finished responses waiting for their flush — leaves first instead of
    /// waiting behind the block. Hooks added afterwards still run at the end
    /// of the iteration. Safe from any callback: no borrow of the loop is
    /// held while user code runs.
    pub fn run_end_of_iteration_now(&self) {
        self.run_end_of_iteration();
    }

    fn run_end_of_iteration(&self) {
        // Hooks added while these run (a flush that completes a write whose
        // callback writes again) go to the emptied list and run in the next
        // turn of this loop, still before the poll.
        while !self.inner.end_of_iteration.borrow().is_empty() {
            let mut hooks = std::mem::take(&mut *self.inner.end_of_iteration.borrow_mut());
            for hook in hooks.drain(..) {
                match hook {
                    Hook::Boxed(f) => self.run_guarded(f),
                    Hook::Shared(h) => self.run_guarded(|| h.end_of_iteration()),
                }
            }
            // Hand the room back for the next iteration, unless new hooks
            // already took a list of their own.
            let mut slot = self.inner.end_of_iteration.borrow_mut();
            if slot.capacity() < hooks.capacity() && slot.is_empty() {
                *slot = hooks;
            }
        }
    }

    /// Move everything other threads queued into this loop's callbacks.
    fn drain_remote(&self) {
        for task in self.inner.remote.take_all() {
            match task {
                RemoteTask::Callback(cb) => self.add_callback(cb),
                RemoteTask::ExecutorResult { key, value } => {
                    let done = self.inner.pending_results.borrow_mut().try_remove(key);
                    if let Some(done) = done {
                        self.add_callback(move || done(value));
                    }
                }
                RemoteTask::ExecutorPanicked { key } => {
                    let done = self.inner.pending_results.borrow_mut().try_remove(key);
                    drop(done);
                }
            }
        }
    }

    /// Run user code, logging (not propagating) a panic, and timing it if
    /// the blocking alarm is on.
    fn run_guarded(&self, f: impl FnOnce()) {
        let started = self
            .inner
            .blocking_threshold
            .get()
            .map(|t| (t, Instant::now()));
        if catch_unwind(AssertUnwindSafe(f)).is_err() {
            log::error!("exception in callback (panic caught by the IOLoop; see above)");
        }
        if let Some((threshold, started)) = started {
            let took = started.elapsed();
            if took > threshold {
                log::warn!(
                    "IOLoop blocked for {:.3} s in one callback (threshold {:.3} s)",
                    took.as_secs_f64(),
                    threshold.as_secs_f64()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `Rc` hook that notes its name when run.
    struct Named(&'static str, Rc<RefCell<Vec<&'static str>>>);
    impl EndOfIteration for Named {
        fn end_of_iteration(self: Rc<Self>) {
            self.1.borrow_mut().push(self.0);
        }
    }

    #[test]
    fn boxed_and_rc_hooks_run_in_the_order_added_and_the_list_keeps_its_room() {
        let ioloop = IOLoop::new().expect("loop");
        let order = Rc::new(RefCell::new(Vec::new()));
        let o = Rc::clone(&order);
        ioloop.add_end_of_iteration(move || o.borrow_mut().push("boxed 1"));
        ioloop.add_end_of_iteration_rc(Rc::new(Named("rc 1", Rc::clone(&order))));
        let (o, l) = (Rc::clone(&order), ioloop.clone());
        ioloop.add_end_of_iteration(move || {
            o.borrow_mut().push("boxed 2");
            // Added while the hooks run: still runs in this call.
            l.add_end_of_iteration_rc(Rc::new(Named("rc late", Rc::clone(&o))));
        });
        ioloop.run_end_of_iteration_now();
        assert_eq!(*order.borrow(), ["boxed 1", "rc 1", "boxed 2", "rc late"]);
        let list = ioloop.inner.end_of_iteration.borrow();
        assert!(list.is_empty() && list.capacity() >= 3);
    }

    /// A shared readiness handler that counts its calls in a cell it does
    /// not own, so the count outlives it.
    struct Counting(Rc<Cell<u32>>);
    impl OnReady for Counting {
        fn on_ready(self: Rc<Self>, _ready: Ready) {
            self.0.set(self.0.get() + 1);
        }
    }

    #[test]
    fn a_shared_handler_is_held_weakly_and_called_only_while_alive() {
        use std::io::Write;
        let ioloop = IOLoop::new().expect("loop");
        let (mut watched, mut poke) = mio::net::UnixStream::pair().expect("pair");
        let calls = Rc::new(Cell::new(0));
        let handler = Rc::new(Counting(Rc::clone(&calls)));
        let weak: Weak<dyn OnReady> = Rc::downgrade(&handler) as Weak<Counting>;
        let token = ioloop
            .add_handler_rc(&mut watched, Interest::READABLE, weak)
            .expect("register");
        // The loop keeps no strong reference.
        assert_eq!(Rc::strong_count(&handler), 1);

        // A second socket whose boxed handler stops the loop: once its
        // byte is read, the poll batch that carried it has been dispatched.
        let (mut stopper, mut stop_poke) = mio::net::UnixStream::pair().expect("pair");
        let l = ioloop.clone();
        let stop_token = ioloop
            .add_handler(&mut stopper, Interest::READABLE, move |_| l.stop())
            .expect("register");

        // Alive: the readable edge reaches it.
        poke.write_all(b"x").expect("write");
        stop_poke.write_all(b"x").expect("write");
        ioloop.start();
        assert_eq!(calls.get(), 1);

        // Dropped by its owner: the event in the same batch as the
        // stopper's finds nothing to call, and nothing panics.
        drop(handler);
        poke.write_all(b"y").expect("write");
        stop_poke.write_all(b"y").expect("write");
        ioloop.start();
        assert_eq!(calls.get(), 1);
        assert_eq!(ioloop.handler_count(), 2);
        ioloop.remove_handler(token);
        ioloop.remove_handler(stop_token);
        assert_eq!(ioloop.handler_count(), 0);
    }
}
