//! Graceful shutdown on SIGINT / SIGTERM.
//!
//! Tornado leaves this to the application (issue #1791); bdarnell's advice
//! there is what this does: stop accepting, report unhealthy so a load
//! balancer stops sending traffic, give in-flight requests a *fixed* grace
//! period, then stop the loop. Tracking every in-flight operation to zero is
//! "not worth the trouble" — long-polls would hold shutdown open anyway.
//!
//! Signals arrive on a small thread (signal-hook's iterator, a self-pipe
//! underneath); it hands them to the loop with the thread-safe
//! [`IOLoopHandle::add_callback`](crate::ioloop::IOLoopHandle::add_callback),
//! the one door into the loop from outside. A second signal stops at once.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use crate::ioloop::IOLoop;

/// Time given to in-flight requests after the listener closes.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

thread_local! {
    /// What the loop thread does on a signal (set by [`install`]).
    static ON_SIGNAL: RefCell<Option<Rc<dyn Fn()>>> = const { RefCell::new(None) };
}

/// Shared "are we draining" flag, for `/healthz`.
#[derive(Clone, Default)]
pub struct Draining(Rc<Cell<bool>>);

impl Draining {
    /// True once a shutdown signal arrived.
    pub fn get(&self) -> bool {
        self.0.get()
    }
}

/// Install the handlers. At the first signal, `draining` is set and
/// `stop_accepting` runs on the loop; the loop stops `grace` later, or at
/// once on a second signal.
pub fn install(
    ioloop: &IOLoop,
    grace: Duration,
    draining: Draining,
    stop_accepting: impl Fn() + 'static,
) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let flag = draining;
    let loop_ = ioloop.clone();
    ON_SIGNAL.with(|slot| {
        *slot.borrow_mut() = Some(Rc::new(move || {
            if flag.0.replace(true) {
                log::warn!("second signal: stopping now");
                loop_.stop();
                return;
            }
            log::info!(
                "shutting down: no new connections; stopping in {} s",
                grace.as_secs_f64()
            );
            stop_accepting();
            let l = loop_.clone();
            loop_.call_later(grace, move || l.stop());
        }));
    });
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let handle = ioloop.handle();
    std::thread::Builder::new()
        .name("squall-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                log::debug!("signal {signal}");
                handle.add_callback(|| {
                    let cb = ON_SIGNAL.with(|slot| slot.borrow().clone());
                    if let Some(cb) = cb {
                        cb();
                    }
                });
            }
        })?;
    Ok(())
}
