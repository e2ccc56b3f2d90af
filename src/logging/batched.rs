//! [`BatchedWriter`]: the lines a loop iteration logs leave in one
//! `write(2)`, at the end of that iteration, as socket writes do (see
//! [`crate::iostream`]).
//!
//! # How
//!
//! ```text
//!  log::info!(...) ─▶ Logger formats the line ─▶ BatchedWriter::write_line
//!                                                        │
//!        on a thread whose IOLoop is running ◀───────────┤────────▶ any other thread
//!        append to `pending`; the first line              │          write `pending`, then the
//!        of a batch asks that loop for an                 │          line, through at once
//!        end-of-iteration hook                            │
//!                       │                                 │
//!        end of the iteration (before the poll) ─▶ one write of `pending`
//! ```
//!
//! Invariants:
//! * **Nothing waits for a quiet loop.** The line that makes `pending`
//!   non-empty registers the flush on its own running loop, and a loop runs
//!   its end-of-iteration hooks before it polls and before it stops, so a
//!   line is out before the loop that logged it can sleep.
//! * **Order is kept**, across threads too: every line goes through the
//!   one `pending` buffer, and a write-through first writes what is pending.
//! * **Bounded**: once `pending` holds [`FLUSH_AT`] bytes it is written at
//!   once.
//! * A panic that unwinds out of the loop flushes first
//!   ([`init`](super::init)'s panic
//!   hook), so the lines leading up to it are not lost. A `SIGKILL` loses
//!   at most one iteration's lines.

use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::ioloop::IOLoop;

/// Bytes of pending lines that are written at once instead of at the end
/// of the iteration (a few hundred access-log lines).
pub const FLUSH_AT: usize = 64 * 1024;

/// A [`Write`] for a logger that batches lines per loop iteration (see the
/// module docs): squall's [`Logger`](super::Logger) writes through one, and
/// any other logger can (e.g. `env_logger`'s `Target::Pipe`). Clones share
/// one buffer and one sink.
pub struct BatchedWriter<W: Write + Send + 'static> {
    /// The buffer and the sink, shared with the flush hooks (which run on
    /// the loop, outside the logger's own lock) and with clones.
    state: Arc<Mutex<State<W>>>,
}

/// What the writer's clones and hooks share.
struct State<W> {
    /// Lines logged on a running loop and not yet written.
    pending: Vec<u8>,
    /// Where lines go (stderr in the binary).
    sink: W,
}

impl<W: Write + Send + 'static> Clone for BatchedWriter<W> {
    fn clone(&self) -> Self {
        BatchedWriter {
            state: Arc::clone(&self.state),
        }
    }
}

impl<W: Write + Send + 'static> BatchedWriter<W> {
    /// A writer that batches into `sink`.
    pub fn new(sink: W) -> BatchedWriter<W> {
        BatchedWriter {
            state: Arc::new(Mutex::new(State {
                pending: Vec::new(),
                sink,
            })),
        }
    }

    /// Write what is pending now (a panic hook, or before the process
    /// exits).
    pub fn flush_pending(&self) {
        write_out(&mut lock(&self.state));
    }

    /// Write one line (or several): batched on a thread whose loop is
    /// running, written through elsewhere (see the module docs). Takes
    /// `&self`, so a logger shared between threads needs no lock of its
    /// own.
    pub fn write_line(&self, line: &[u8]) -> io::Result<()> {
        let running = IOLoop::try_current().filter(IOLoop::is_running);
        let mut state = lock(&self.state);
        match running {
            Some(ioloop) => {
                if state.pending.is_empty() {
                    let shared = Arc::clone(&self.state);
                    ioloop.add_end_of_iteration(move || write_out(&mut lock(&shared)));
                }
                state.pending.extend_from_slice(line);
                if state.pending.len() >= FLUSH_AT {
                    // The hook registered above finds nothing left: fine.
                    write_out(&mut state);
                }
            }
            None => {
                write_out(&mut state);
                state.sink.write_all(line)?;
                state.sink.flush()?;
            }
        }
        Ok(())
    }

    /// Bytes waiting for the end of the iteration.
    pub fn pending_len(&self) -> usize {
        lock(&self.state).pending.len()
    }
}

/// The state, even if a thread panicked while holding it: a log writer must
/// keep working after a panic, which it is there to report.
fn lock<W>(state: &Mutex<State<W>>) -> MutexGuard<'_, State<W>> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Write `pending` to the sink. A failed write drops the batch: there is
/// nowhere to report a failure of the log itself.
fn write_out<W: Write>(state: &mut State<W>) {
    if state.pending.is_empty() {
        return;
    }
    let _ = state.sink.write_all(&state.pending);
    let _ = state.sink.flush();
    state.pending.clear();
    if state.pending.capacity() > FLUSH_AT * 2 {
        state.pending.shrink_to(FLUSH_AT);
    }
}

impl<W: Write + Send + 'static> Write for BatchedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_line(buf)?;
        Ok(buf.len())
    }

    /// A no-op on a running loop: loggers flush after every line, and the
    /// point is to write a batch at the end of the iteration. Elsewhere,
    /// lines were written through already.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{on_running_loop, Writes};
    use super::*;

    fn line(n: usize) -> Vec<u8> {
        format!("line {n}\n").into_bytes()
    }

    #[test]
    fn lines_of_one_iteration_leave_in_one_write_at_its_end() {
        let sink = Writes::default();
        let writer = BatchedWriter::new(sink.clone());
        let (mut w, s) = (writer.clone(), sink.clone());
        let during = on_running_loop(move || {
            for n in 0..100 {
                w.write_all(&line(n)).unwrap();
                w.flush().unwrap();
            }
            s.written()
        });
        assert_eq!(during, 0, "a line was written during the iteration");
        let writes = sink.taken();
        assert_eq!(writes.len(), 1, "one write for the iteration");
        let expected: Vec<u8> = (0..100).flat_map(line).collect();
        assert_eq!(writes[0], expected);
        assert_eq!(writer.pending_len(), 0);
    }

    #[test]
    fn without_a_running_loop_each_line_is_written_through() {
        let sink = Writes::default();
        let mut writer = BatchedWriter::new(sink.clone());
        writer.write_all(&line(1)).unwrap();
        assert_eq!(sink.taken(), vec![line(1)]);
        let mut from_thread = writer.clone();
        std::thread::spawn(move || from_thread.write_all(&line(2)).unwrap())
            .join()
            .unwrap();
        assert_eq!(sink.taken(), vec![line(2)]);
    }

    #[test]
    fn a_loop_that_is_not_running_yet_does_not_hold_lines() {
        // The binary logs its start-up lines with its loop made but not
        // started: they must not wait for the first iteration.
        let sink = Writes::default();
        let mut writer = BatchedWriter::new(sink.clone());
        let ioloop = IOLoop::new().unwrap();
        ioloop.make_current();
        writer.write_all(&line(3)).unwrap();
        IOLoop::clear_current();
        assert_eq!(sink.taken(), vec![line(3)]);
    }

    #[test]
    fn a_write_through_from_another_thread_keeps_the_order() {
        let sink = Writes::default();
        let writer = BatchedWriter::new(sink.clone());
        on_running_loop(move || {
            let mut on_loop = writer.clone();
            on_loop.write_all(&line(1)).unwrap();
            let mut other = writer.clone();
            std::thread::spawn(move || other.write_all(&line(2)).unwrap())
                .join()
                .unwrap();
        });
        let all: Vec<u8> = sink.taken().concat();
        assert_eq!(all, [line(1), line(2)].concat());
    }

    #[test]
    fn a_batch_reaching_the_bound_is_written_at_once() {
        let sink = Writes::default();
        let (mut w, s) = (BatchedWriter::new(sink.clone()), sink.clone());
        let seen = on_running_loop(move || {
            let big = vec![b'x'; FLUSH_AT / 4];
            for _ in 0..4 {
                w.write_all(&big).unwrap();
            }
            (s.written(), w.pending_len())
        });
        assert_eq!(seen, (1, 0), "(writes, pending) once at the bound");
        assert_eq!(sink.taken().concat().len(), FLUSH_AT);
    }

    #[test]
    fn flush_pending_writes_what_waits() {
        let sink = Writes::default();
        let (w, s) = (BatchedWriter::new(sink.clone()), sink.clone());
        let seen = on_running_loop(move || {
            let mut on_loop = w.clone();
            on_loop.write_all(&line(7)).unwrap();
            w.flush_pending();
            s.written()
        });
        assert_eq!(seen, 1);
        assert_eq!(sink.taken(), vec![line(7)]);
    }
}
