//! Log output for a server on one loop: a line is formatted once, and the
//! lines a loop iteration logs leave in one `write(2)`, at the end of that
//! iteration.
//!
//! Loosely mirrors Tornado's `tornado/log.py` (`enable_pretty_logging`:
//! one call that sets up the server's logging). Tornado's handler formats
//! each record and writes and flushes it, so every access-log line costs
//! the loop a system call, and so did squall's: at 50 keep-alive
//! connections the default log level (`info`, which logs each request)
//! took the server from 7.2 to 9.7 µs of CPU per request, and pipelined
//! requests from 1.1 to 3.5 µs (`loadgen hello`, stderr to a file).
//!
//! ```text
//!  log::info!(...)
//!       │
//!  Logger (logger.rs)         RUST_LOG's filter (env_filter); the line
//!       │                     `[time LEVEL target] message` into a
//!       │                     per-thread buffer
//!  BatchedWriter (batched.rs) appended to the batch of this loop
//!       │                     iteration (written through off the loop)
//!  end of the iteration ─────▶ one write(2) to stderr
//! ```
//!
//! | piece | file | what |
//! |---|---|---|
//! | [`init`] | here | installs the [`Logger`] on stderr, and a panic hook that writes pending lines first |
//! | [`Logger`] | `logging/logger.rs` | filter and format |
//! | [`BatchedWriter`] | `logging/batched.rs` | batching per loop iteration, its invariants |

mod batched;
mod logger;

use std::io::{self, IsTerminal};

pub use batched::{BatchedWriter, FLUSH_AT};
pub use logger::Logger;

/// Set up logging as the `squall` binary does: a [`Logger`] filtering with
/// `RUST_LOG` (else `default_filter`, e.g. `"info"`; `env_logger`'s
/// syntax, e.g. `info,squall::access=warn`), writing to stderr through a
/// [`BatchedWriter`], the level colored when stderr is a terminal
/// (`RUST_LOG_STYLE=always` / `never` decide otherwise, as for
/// `env_logger`); and a panic hook that writes pending lines before the
/// panic message. Call it once, first thing in `main`; a second call, or a
/// call after another logger was installed, does nothing.
pub fn init(default_filter: &str) {
    // A RUST_LOG that is set wins, even empty (as with env_logger).
    let spec = std::env::var("RUST_LOG").unwrap_or_else(|_| default_filter.to_string());
    // Directives it cannot read are reported on stderr and skipped.
    let filter = env_filter::Builder::new().parse(&spec).build();
    let colored = match std::env::var("RUST_LOG_STYLE").as_deref() {
        Ok("always") => true,
        Ok("never") => false,
        _ => io::stderr().is_terminal(),
    };
    let logger = Logger::new(filter, BatchedWriter::new(io::stderr()), colored);
    let max_level = logger.max_level();
    if log::set_boxed_logger(Box::new(logger)).is_err() {
        return;
    }
    log::set_max_level(max_level);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // `Logger::flush` writes the batch the loop had not written yet.
        log::logger().flush();
        previous(info);
    }));
}

/// Run `f` as a callback on a fresh loop made current on this thread,
/// stop the loop on the next iteration (so the end-of-iteration hooks `f`
/// caused have run), and return what `f` returned. For the tests of
/// `batched` and `logger`.
#[cfg(test)]
fn on_running_loop<T: 'static>(f: impl FnOnce() -> T + 'static) -> T {
    use crate::ioloop::IOLoop;
    use std::cell::Cell;
    use std::rc::Rc;

    let ioloop = IOLoop::new().unwrap();
    ioloop.make_current();
    let result = Rc::new(Cell::new(None));
    let out = Rc::clone(&result);
    ioloop.add_callback(move || {
        out.set(Some(f()));
        IOLoop::current().add_callback(|| IOLoop::current().stop());
    });
    ioloop.start();
    IOLoop::clear_current();
    result.take().expect("the callback ran")
}

/// A sink that keeps each write apart, to count system calls. For the
/// tests of `batched` and `logger`.
#[cfg(test)]
#[derive(Clone, Default)]
struct Writes(std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

#[cfg(test)]
impl io::Write for Writes {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().push(buf.to_vec());
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
impl Writes {
    /// The writes so far, each apart, emptying the sink.
    fn taken(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    /// How many writes so far.
    fn written(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}
