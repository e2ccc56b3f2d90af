//! The worker pool behind [`IOLoop::run_in_executor`](super::IOLoop::run_in_executor):
//! threads started on demand, up to a limit, and let go once they sit idle.
//!
//! Mirrors the default executor of Tornado's `IOLoop.run_in_executor`, a
//! Python `concurrent.futures.ThreadPoolExecutor`: a job goes to an idle
//! thread if there is one, and a new thread starts only when none is idle
//! and fewer than the limit run. Python's pool keeps its threads until the
//! process ends; this one lets a thread exit after it has waited
//! [`DEFAULT_KEEP_ALIVE`] for work (tokio's blocking pool does the same, after
//! 10 s), so a server that hashed one password at a login goes back to being
//! the single thread the reactor design promises.
//!
//! # Invariants
//!
//! * Every count lives in [`State`], behind one mutex; a job is queued, a
//!   thread is counted and a thread decides to exit only while holding it.
//!   So a thread never exits while a job it could take is queued: it checks
//!   the queue under the same lock the submitter pushed under.
//! * `queued > idle` after a submit means some job has no thread waiting for
//!   it, which is exactly when a new thread starts (if the limit allows).
//! * Dropping the pool lets the threads finish what is queued and exit; it
//!   does not wait for them (the loop's drop must not block).

use std::collections::VecDeque;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A job for the worker pool.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// How long an idle worker waits for a job before it exits.
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(10);

/// Threads that run blocking work for one loop.
pub(crate) struct WorkerPool {
    /// What the pool's threads share with it.
    shared: Arc<Shared>,
}

/// The pool's state and the signal idle workers wait on.
struct Shared {
    /// Queue and counts; see the module's invariants.
    state: Mutex<State>,
    /// Notified once per job queued while a worker is idle, and for all at
    /// close.
    job_queued: Condvar,
}

/// Everything the submitter and the workers agree on.
struct State {
    /// Jobs not yet taken, oldest first.
    queue: VecDeque<Job>,
    /// Worker threads alive (started and not yet decided to exit).
    threads: usize,
    /// Of those, how many wait for a job right now.
    idle: usize,
    /// Most threads alive at once.
    max_threads: usize,
    /// How long an idle worker waits before it exits.
    keep_alive: Duration,
    /// Threads started so far, for their names.
    started: usize,
    /// Set when the pool is dropped: workers drain the queue and exit.
    closed: bool,
}

/// Which end of the queue a job joins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QueueEnd {
    /// Behind every queued job (the usual case).
    Back,
    /// Ahead of every queued job (short work someone waits on).
    Front,
}

impl WorkerPool {
    /// A pool of at most `max_threads` workers (at least one). No thread
    /// starts until the first job.
    pub(crate) fn new(max_threads: usize, keep_alive: Duration) -> WorkerPool {
        WorkerPool {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    threads: 0,
                    idle: 0,
                    max_threads: max_threads.max(1),
                    keep_alive,
                    started: 0,
                    closed: false,
                }),
                job_queued: Condvar::new(),
            }),
        }
    }

    /// Change the most threads alive at once (at least one). Threads above
    /// a lowered limit finish their job and exit when they next find the
    /// queue empty.
    pub(crate) fn set_max_threads(&self, max_threads: usize) {
        self.shared.lock().max_threads = max_threads.max(1);
    }

    /// Change how long an idle worker waits before it exits. Workers already
    /// waiting keep the wait they began with.
    pub(crate) fn set_keep_alive(&self, keep_alive: Duration) {
        self.shared.lock().keep_alive = keep_alive;
    }

    /// Worker threads alive now.
    pub(crate) fn threads(&self) -> usize {
        self.shared.lock().threads
    }

    /// Queue `job` at `end` of the queue (`Front`: ahead of every job
    /// already queued). It runs on an idle worker, or on a new one if none
    /// is idle and the limit allows, or else after a running job ends.
    /// Gives the job back if no thread is alive and none could be started.
    pub(crate) fn submit_at(&self, job: Job, end: QueueEnd) -> Result<(), Job> {
        let mut state = self.shared.lock();
        match end {
            QueueEnd::Back => state.queue.push_back(job),
            QueueEnd::Front => state.queue.push_front(job),
        }
        if state.queue.len() <= state.idle {
            drop(state);
            self.shared.job_queued.notify_one();
            return Ok(());
        }
        if state.threads >= state.max_threads {
            // Every thread is busy; the job waits for the first to finish.
            return Ok(());
        }
        match self.spawn_worker(&mut state) {
            Ok(()) => Ok(()),
            Err(e) if state.threads > 0 => {
                log::warn!(
                    "cannot start another worker thread ({e}); the job waits for a busy one"
                );
                Ok(())
            }
            Err(e) => {
                log::error!("cannot start a worker thread: {e}");
                // Still the job pushed above: the lock was held since.
                let pushed = match end {
                    QueueEnd::Back => state.queue.pop_back(),
                    QueueEnd::Front => state.queue.pop_front(),
                };
                match pushed {
                    Some(job) => Err(job),
                    None => Ok(()),
                }
            }
        }
    }

    /// Start one worker, counting it before it runs (under `state`'s lock).
    fn spawn_worker(&self, state: &mut State) -> io::Result<()> {
        let shared = Arc::clone(&self.shared);
        std::thread::Builder::new()
            .name(format!("squall-worker-{}", state.started))
            .spawn(move || shared.work())?;
        state.threads += 1;
        state.started += 1;
        Ok(())
    }
}

impl Shared {
    /// The state, even if a worker panicked while holding it (no job runs
    /// under the lock, so the counts stay consistent).
    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// A worker's life: take jobs until the pool closes and its queue is
    /// empty, or until no job came for the keep-alive time.
    fn work(&self) {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.queue.pop_front() {
                drop(state);
                // run_in_executor's jobs catch their own panics; this one
                // keeps any other job's panic from ending the thread with
                // the count still including it.
                let _ = catch_unwind(AssertUnwindSafe(job));
                state = self.lock();
                continue;
            }
            if state.closed || state.threads > state.max_threads {
                break;
            }
            let deadline = super::deadline_after(Instant::now(), state.keep_alive);
            state.idle += 1;
            let mut timed_out = false;
            while state.queue.is_empty() && !state.closed {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    timed_out = true;
                    break;
                }
                state = match self.job_queued.wait_timeout(state, left) {
                    Ok((guard, _)) => guard,
                    Err(poisoned) => poisoned.into_inner().0,
                };
            }
            state.idle -= 1;
            if timed_out {
                break;
            }
        }
        // Decided under the lock: nothing queued is left without a thread.
        state.threads -= 1;
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.job_queued.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl WorkerPool {
        /// `submit_at(job, QueueEnd::Back)`, the usual end.
        fn submit(&self, job: Job) -> Result<(), Job> {
            self.submit_at(job, QueueEnd::Back)
        }
    }
    use std::sync::mpsc;

    /// Spin (bounded) until `done` holds; `what` names it in the failure.
    fn wait_until(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "never happened: {what}");
            std::thread::yield_now();
        }
    }

    /// Wait until `pool` has `n` threads.
    fn wait_for_threads(pool: &WorkerPool, n: usize) {
        wait_until(&format!("{n} threads"), || pool.threads() == n);
    }

    /// Wait until `n` workers wait for a job.
    fn wait_for_idle(pool: &WorkerPool, n: usize) {
        wait_until(&format!("{n} idle workers"), || {
            pool.shared.lock().idle == n
        });
    }

    /// Run `n` jobs that can only finish together (a barrier of `n`), so
    /// they need `n` threads at once; return once all have finished.
    fn run_jobs_that_meet(pool: &WorkerPool, n: usize) {
        let barrier = Arc::new(std::sync::Barrier::new(n));
        let (tx, rx) = mpsc::channel();
        for _ in 0..n {
            let (barrier, tx) = (Arc::clone(&barrier), tx.clone());
            assert!(pool
                .submit(Box::new(move || {
                    barrier.wait();
                    let _ = tx.send(());
                }))
                .is_ok());
        }
        for _ in 0..n {
            assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(()));
        }
    }

    #[test]
    fn a_job_submitted_first_runs_ahead_of_the_queue() {
        let pool = WorkerPool::new(1, DEFAULT_KEEP_ALIVE);
        let (started_tx, started) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        // The one thread is busy until released.
        assert!(pool
            .submit(Box::new(move || {
                let _ = started_tx.send(());
                let _ = release_rx.recv_timeout(Duration::from_secs(10));
            }))
            .is_ok());
        assert_eq!(started.recv_timeout(Duration::from_secs(10)), Ok(()));
        let (tx, rx) = mpsc::channel();
        for (name, end) in [
            ("queued 1", QueueEnd::Back),
            ("queued 2", QueueEnd::Back),
            ("urgent", QueueEnd::Front),
        ] {
            let tx = tx.clone();
            let job: Job = Box::new(move || {
                let _ = tx.send(name);
            });
            let submitted = pool.submit_at(job, end);
            assert!(submitted.is_ok());
        }
        release.send(()).expect("release");
        let order: Vec<&str> = (0..3)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).expect("ran"))
            .collect();
        assert_eq!(order, ["urgent", "queued 1", "queued 2"]);
    }

    #[test]
    fn no_thread_starts_before_the_first_job() {
        let pool = WorkerPool::new(4, DEFAULT_KEEP_ALIVE);
        assert_eq!(pool.threads(), 0);
    }

    #[test]
    fn an_idle_worker_takes_the_next_job_instead_of_a_new_thread() {
        let pool = WorkerPool::new(4, DEFAULT_KEEP_ALIVE);
        let (tx, rx) = mpsc::channel();
        for i in 0..5 {
            let tx = tx.clone();
            assert!(pool
                .submit(Box::new(move || {
                    let _ = tx.send(i);
                }))
                .is_ok());
            // Wait for the job, so the one worker is idle again before the next.
            assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(i));
            wait_for_idle(&pool, 1);
        }
        assert_eq!(pool.threads(), 1);
    }

    #[test]
    fn jobs_that_wait_for_each_other_get_a_thread_each_up_to_the_limit() {
        let pool = WorkerPool::new(3, DEFAULT_KEEP_ALIVE);
        run_jobs_that_meet(&pool, 3);
        assert_eq!(pool.threads(), 3);
        // A fourth job over the limit waits for a thread instead of a new one.
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel();
        let gate_rx = Arc::new(Mutex::new(gate_rx));
        for i in 0..4 {
            let (gate_rx, done_tx) = (Arc::clone(&gate_rx), done_tx.clone());
            assert!(pool
                .submit(Box::new(move || {
                    if i < 3 {
                        let _ = gate_rx
                            .lock()
                            .map(|rx| rx.recv_timeout(Duration::from_secs(10)));
                    }
                    let _ = done_tx.send(i);
                }))
                .is_ok());
        }
        assert_eq!(pool.threads(), 3);
        for _ in 0..3 {
            assert!(gate_tx.send(()).is_ok());
        }
        let mut done: Vec<i32> = (0..4)
            .filter_map(|_| done_rx.recv_timeout(Duration::from_secs(10)).ok())
            .collect();
        done.sort_unstable();
        assert_eq!(done, [0, 1, 2, 3]);
        assert_eq!(pool.threads(), 3);
    }

    #[test]
    fn idle_workers_exit_after_the_keep_alive_and_come_back_on_demand() {
        let pool = WorkerPool::new(2, Duration::from_millis(20));
        run_jobs_that_meet(&pool, 2);
        let (tx, rx) = mpsc::channel();
        wait_for_threads(&pool, 0);
        assert!(pool
            .submit(Box::new(move || {
                let _ = tx.send(());
            }))
            .is_ok());
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(()));
        assert!(pool.threads() <= 1);
    }

    #[test]
    fn dropping_the_pool_runs_what_is_queued_and_ends_its_threads() {
        let pool = WorkerPool::new(1, DEFAULT_KEEP_ALIVE);
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel();
        let first_done = done_tx.clone();
        assert!(pool
            .submit(Box::new(move || {
                let _ = gate_rx.recv_timeout(Duration::from_secs(10));
                let _ = first_done.send(1);
            }))
            .is_ok());
        assert!(pool
            .submit(Box::new(move || {
                let _ = done_tx.send(2);
            }))
            .is_ok());
        let shared = Arc::clone(&pool.shared);
        drop(pool);
        assert!(gate_tx.send(()).is_ok());
        assert_eq!(done_rx.recv_timeout(Duration::from_secs(10)), Ok(1));
        assert_eq!(done_rx.recv_timeout(Duration::from_secs(10)), Ok(2));
        wait_until("the worker exits after close", || {
            shared.lock().threads == 0
        });
    }

    #[test]
    fn a_job_that_panics_leaves_its_worker_counted_and_working() {
        let pool = WorkerPool::new(1, DEFAULT_KEEP_ALIVE);
        assert!(pool
            .submit(Box::new(|| panic!("job panics on purpose")))
            .is_ok());
        let (tx, rx) = mpsc::channel();
        assert!(pool
            .submit(Box::new(move || {
                let _ = tx.send(std::thread::current().name().map(str::to_owned));
            }))
            .is_ok());
        let ran_on = rx.recv_timeout(Duration::from_secs(10));
        assert_eq!(ran_on, Ok(Some("squall-worker-0".to_owned())));
        assert_eq!(pool.threads(), 1);
    }

    #[test]
    fn lowering_the_limit_lets_the_extra_threads_go() {
        let pool = WorkerPool::new(2, DEFAULT_KEEP_ALIVE);
        run_jobs_that_meet(&pool, 2);
        let (tx, rx) = mpsc::channel();
        wait_for_idle(&pool, 2);
        pool.set_max_threads(1);
        // The idle workers learn of the new limit when they next wake.
        assert!(pool
            .submit(Box::new(move || {
                let _ = tx.send(());
            }))
            .is_ok());
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(()));
        wait_for_threads(&pool, 1);
    }
}
