//! Graceful shutdown on SIGINT / SIGTERM.
//!
//! Tornado leaves this to the application (issue #1791); bdarnell's advice
//! there is what this does: stop accepting, report unhealthy so a load
//! balancer stops sending traffic, give in-flight requests a *fixed* grace
//! period, then stop the loop. Tracking every in-flight operation to zero is
//! "not worth the trouble" — long-polls would hold shutdown open anyway.
//!
//! Signals come in through a self-pipe that the loop itself watches:
//! signal-hook's handler writes one byte per signal to a Unix socket pair
//! (the only async-signal-safe thing it does), and the loop reads them like
//! any other readable socket. No thread is needed, so a server that has not
//! used the worker pool stays a single-threaded process (see
//! `docs/reactor.md`, "Signals"). A second signal stops at once.

use std::cell::Cell;
use std::io::{ErrorKind, Read};
use std::rc::Rc;
use std::time::Duration;

use mio::net::UnixStream;
use mio::Interest;

use crate::ioloop::IOLoop;

/// Time given to in-flight requests after the listener closes.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

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
    let on_signal = move || {
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
    };
    let (reader, writer) = std::os::unix::net::UnixStream::pair()?;
    reader.set_nonblocking(true)?;
    writer.set_nonblocking(true)?;
    let mut reader = UnixStream::from_std(reader);
    let registered = Rc::new(Cell::new(None::<UnixStream>));
    let owner = Rc::clone(&registered);
    ioloop.add_handler(&mut reader, Interest::READABLE, move |_ready| {
        // Readiness is edge-triggered: read until the socket is empty.
        let mut signals = 0;
        if let Some(reader) = owner.take() {
            let mut buf = [0u8; 16];
            loop {
                match (&reader).read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => signals += n,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            owner.set(Some(reader));
        }
        for _ in 0..signals {
            log::debug!("shutdown signal");
            on_signal();
        }
    })?;
    // The handler owns the read end from here on, for the life of the loop.
    registered.set(Some(reader));
    // Only now, with the reader in place, take the signals over: a failure
    // above leaves their default action (terminate) untouched.
    // One write end per signal: signal-hook owns each and writes to it from
    // the handler (non-blocking; a byte that does not fit is dropped, and
    // the bytes already queued are signals enough).
    signal_hook::low_level::pipe::register(SIGTERM, writer.try_clone()?)?;
    signal_hook::low_level::pipe::register(SIGINT, writer)?;
    Ok(())
}
