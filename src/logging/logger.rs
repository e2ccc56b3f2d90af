//! [`Logger`]: the `log::Log` the binary installs. `RUST_LOG` decides which
//! records pass, in `env_logger`'s syntax (the `env_filter` crate, which
//! `env_logger` itself uses); each line is formatted once, into a
//! per-thread buffer, and handed to a [`BatchedWriter`].
//!
//! Why not `env_logger` itself: at the default level every request logs an
//! access line, and `env_logger` formats each line into a buffer of its own
//! and then, writing to any target but its own stderr, copies it through
//! an ANSI-stripping pass, colors off or not. Measured on the pipelined
//! hello benchmark at `RUST_LOG=info` (perf): that pass, the style
//! machinery and the formatter took about a quarter of the server's CPU.
//! Formatting a line is a few appends; it is done here.
//!
//! The line keeps `env_logger`'s default format, so whatever reads the log
//! keeps working:
//!
//! ```text
//! [2026-11-23T06:45:45Z INFO  squall::access] 200 GET /hello (127.0.0.1) 0.28ms
//!  └ UTC, to the second └ level, 5 wide └ target └ the message
//! ```
//!
//! With colors (stderr is a terminal, or `RUST_LOG_STYLE=always`) the level
//! is colored as `env_logger` colors it and the brackets are dimmed.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::Write;
use std::time::SystemTime;

use log::{Level, LevelFilter, Log, Metadata, Record};

use super::BatchedWriter;

/// A `log::Log` that filters with `RUST_LOG`'s directives and writes one
/// line per record through a [`BatchedWriter`]. See the module docs.
pub struct Logger<W: Write + Send + 'static> {
    /// Which records pass: the directives of `RUST_LOG` (or the default).
    filter: env_filter::Filter,
    /// Where the lines go; shared with the panic hook, which flushes it.
    writer: BatchedWriter<W>,
    /// Color the level with ANSI escapes.
    colored: bool,
}

impl<W: Write + Send + 'static> Logger<W> {
    /// A logger passing what `filter` passes to `writer`, the level colored
    /// if `colored`.
    pub fn new(filter: env_filter::Filter, writer: BatchedWriter<W>, colored: bool) -> Self {
        Logger {
            filter,
            writer,
            colored,
        }
    }

    /// The most verbose level any directive lets through, for
    /// `log::set_max_level` (so the `log!` macros skip the rest without a
    /// call).
    pub fn max_level(&self) -> LevelFilter {
        self.filter.filter()
    }
}

impl<W: Write + Send + 'static> Log for Logger<W> {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.filter.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.filter.matches(record) {
            return;
        }
        with_line_buffer(|line| {
            format_line(line, record, SystemTime::now(), self.colored);
            // Nowhere to report a failure of the log itself.
            let _ = self.writer.write_line(line);
        });
    }

    /// Write what waits for the end of the loop iteration now (a line
    /// logged off the loop is out already; see [`BatchedWriter`]).
    fn flush(&self) {
        self.writer.flush_pending();
    }
}

/// A line buffer kept longer than this is dropped after use, so one huge
/// message does not pin its memory.
const KEPT_LINE_CAPACITY: usize = 16 * 1024;

/// Run `f` with this thread's line buffer, cleared. A message whose own
/// formatting logs (the buffer is then in use) gets a fresh one.
///
/// Why a buffer of our own rather than formatting straight into the
/// writer's batch: the message's `Display` is application code, which may
/// log, and must not run while the writer's lock is held.
fn with_line_buffer(f: impl FnOnce(&mut Vec<u8>)) {
    thread_local! {
        static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    LINE.with(|cell| match cell.try_borrow_mut() {
        Ok(mut line) => {
            line.clear();
            f(&mut line);
            if line.capacity() > KEPT_LINE_CAPACITY {
                *line = Vec::new();
            }
        }
        Err(_) => f(&mut Vec::new()),
    });
}

/// Append `record` to `out` as one line (see the module docs), stamped
/// with `now`.
fn format_line(out: &mut Vec<u8>, record: &Record<'_>, now: SystemTime, colored: bool) {
    let level = record.level();
    let (open, close) = if colored {
        (&b"\x1b[90m[\x1b[0m"[..], &b"\x1b[90m]\x1b[0m"[..])
    } else {
        (&b"["[..], &b"]"[..])
    };
    out.extend_from_slice(open);
    out.extend_from_slice(&timestamp(now));
    out.push(b' ');
    if colored {
        out.extend_from_slice(level_style(level).as_bytes());
        out.extend_from_slice(level.as_str().as_bytes());
        out.extend_from_slice(b"\x1b[0m");
    } else {
        out.extend_from_slice(level.as_str().as_bytes());
    }
    // `{:<5}`: `INFO` and `WARN` get a space, so targets line up.
    out.resize(out.len() + 5 - level.as_str().len(), b' ');
    out.push(b' ');
    out.extend_from_slice(record.target().as_bytes());
    out.extend_from_slice(close);
    out.push(b' ');
    match record.args().as_str() {
        Some(text) => out.extend_from_slice(text.as_bytes()),
        None => {
            let _ = fmt::write(&mut Appender(out), *record.args());
        }
    }
    out.push(b'\n');
}

/// `env_logger`'s color for each level.
fn level_style(level: Level) -> &'static str {
    match level {
        Level::Error => "\x1b[1m\x1b[31m",
        Level::Warn => "\x1b[33m",
        Level::Info => "\x1b[32m",
        Level::Debug => "\x1b[34m",
        Level::Trace => "\x1b[36m",
    }
}

/// A `fmt::Write` that appends to a byte buffer. (`io::Write` for `Vec`
/// goes through an adapter that tracks I/O errors a `Vec` cannot have.)
struct Appender<'a>(&'a mut Vec<u8>);

impl fmt::Write for Appender<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Length of an RFC 3339 UTC timestamp to the second,
/// `2026-11-23T06:45:45Z`.
const TIMESTAMP_LEN: usize = 20;

/// `now` as `YYYY-MM-DDTHH:MM:SSZ` (UTC), formatted once per second per
/// thread. Times before 1970 or after year 9999 are clamped to those
/// bounds.
fn timestamp(now: SystemTime) -> [u8; TIMESTAMP_LEN] {
    thread_local! {
        /// The last second stamped, and its text.
        static LAST: Cell<(u64, [u8; TIMESTAMP_LEN])> =
            const { Cell::new((u64::MAX, [0; TIMESTAMP_LEN])) };
    }
    let secs = crate::httputil::date::clamped_unix_seconds(now);
    LAST.with(|last| {
        let (stamped, text) = last.get();
        if stamped == secs {
            return text;
        }
        let text = format_timestamp(secs);
        last.set((secs, text));
        text
    })
}

/// Seconds since the epoch (at most 9999-12-31T23:59:59Z, see
/// [`clamped_unix_seconds`](crate::httputil::date::clamped_unix_seconds))
/// as an RFC 3339 UTC timestamp.
fn format_timestamp(secs: u64) -> [u8; TIMESTAMP_LEN] {
    let (year, month, day) = civil_from_days(secs / 86_400);
    let of_day = secs % 86_400;
    let (hour, minute, second) = (of_day / 3600, of_day / 60 % 60, of_day % 60);
    let mut text = *b"0000-00-00T00:00:00Z";
    let mut put = |at: usize, value: u64, width: usize| {
        let mut value = value;
        for i in (at..at + width).rev() {
            text[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, year, 4);
    put(5, month, 2);
    put(8, day, 2);
    put(11, hour, 2);
    put(14, minute, 2);
    put(17, second, 2);
    text
}

/// The proleptic Gregorian (year, month, day) of a day count since
/// 1970-01-01: Howard Hinnant's `civil_from_days`, for days ≥ 0. Shifting
/// the epoch to 0000-03-01 puts the leap day at the end of each year, and
/// the calendar repeats every 400-year era of 146 097 days.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Days from 0000-03-01 to 1970-01-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097; // [0, 146096]
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365; // [0, 399]
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100); // [0, 365]
    let month_from_march = (5 * day_of_year + 2) / 153; // [0, 11]
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1; // [1, 31]
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::super::{on_running_loop, Writes};
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn line(level: Level, target: &str, args: fmt::Arguments<'_>, colored: bool) -> String {
        let mut out = Vec::new();
        let record = Record::builder()
            .level(level)
            .target(target)
            .args(args)
            .build();
        format_line(&mut out, &record, at(1_795_416_345), colored);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_line_has_env_loggers_default_format() {
        let ip = std::net::Ipv4Addr::LOCALHOST;
        assert_eq!(
            line(
                Level::Info,
                "squall::access",
                format_args!("200 GET /hello ({ip}) {:.2}ms", 0.284),
                false
            ),
            "[2026-11-23T06:45:45Z INFO  squall::access] 200 GET /hello (127.0.0.1) 0.28ms\n"
        );
        assert_eq!(
            line(Level::Error, "squall", format_args!("plain"), false),
            "[2026-11-23T06:45:45Z ERROR squall] plain\n"
        );
    }

    #[test]
    fn colors_mark_the_level_and_dim_the_brackets() {
        assert_eq!(
            line(Level::Warn, "t", format_args!("m"), true),
            "\x1b[90m[\x1b[0m2026-11-23T06:45:45Z \x1b[33mWARN\x1b[0m  t\x1b[90m]\x1b[0m m\n"
        );
    }

    #[test]
    fn timestamps_agree_with_the_http_date_formatter() {
        // httpdate's calendar is independent of ours: compare the two at
        // every 7th day and a varying time of day, 1970 to 2400 (leap
        // days, the 2100 non-leap century, the 2000 leap one).
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let mut secs = 0;
        while secs < 13_569_465_600 {
            let imf = crate::httputil::format_http_date(at(secs)); // Sun, 06 Nov 1994 08:49:37 GMT
            let month = MONTHS.iter().position(|m| *m == &imf[8..11]).unwrap() + 1;
            let expected = format!(
                "{}-{month:02}-{}T{}Z",
                &imf[12..16],
                &imf[5..7],
                &imf[17..25]
            );
            assert_eq!(
                String::from_utf8(format_timestamp(secs).to_vec()).unwrap(),
                expected,
                "at {secs}"
            );
            secs += 7 * 86_400 + 4_321;
        }
        assert_eq!(&format_timestamp(951_782_400), b"2000-02-29T00:00:00Z");
        assert_eq!(&format_timestamp(4_107_542_400), b"2100-03-01T00:00:00Z");
    }

    #[test]
    fn timestamps_are_clamped_to_four_digit_years() {
        assert_eq!(&timestamp(at(0)), b"1970-01-01T00:00:00Z");
        assert_eq!(
            &timestamp(UNIX_EPOCH - Duration::from_secs(5)),
            b"1970-01-01T00:00:00Z"
        );
        assert_eq!(&timestamp(at(253_402_300_799)), b"9999-12-31T23:59:59Z");
        assert_eq!(&timestamp(at(u64::MAX / 2)), b"9999-12-31T23:59:59Z");
    }

    #[test]
    fn flush_writes_what_waits_for_the_end_of_the_iteration() {
        let sink = Writes::default();
        let filter = env_filter::Builder::new().parse("info").build();
        let logger = Logger::new(filter, BatchedWriter::new(sink.clone()), false);
        let s = sink.clone();
        let seen = on_running_loop(move || {
            logger.log(
                &Record::builder()
                    .level(Level::Info)
                    .target("t")
                    .args(format_args!("waiting"))
                    .build(),
            );
            let before = s.written();
            logger.flush();
            (before, s.written())
        });
        assert_eq!(seen.0, 0, "the line waited for the end of the iteration");
        assert!(seen.1 > 0, "flush wrote it");
    }

    #[test]
    fn the_filter_decides_what_is_written() {
        let sink = Writes::default();
        let filter = env_filter::Builder::new()
            .parse("info,squall::access=warn")
            .build();
        let logger = Logger::new(filter, BatchedWriter::new(sink.clone()), false);
        assert_eq!(logger.max_level(), LevelFilter::Info);
        let log = |level, target: &str, text: &str| {
            logger.log(
                &Record::builder()
                    .level(level)
                    .target(target)
                    .args(format_args!("{text}"))
                    .build(),
            )
        };
        log(Level::Info, "squall::access", "quiet");
        log(Level::Warn, "squall::access", "404 GET /x");
        log(Level::Info, "squall::apps", "listening");
        log(Level::Debug, "squall::apps", "detail");
        let written = String::from_utf8(sink.taken().concat()).unwrap();
        let messages: Vec<&str> = written
            .lines()
            .map(|l| l.split_once("] ").unwrap().1)
            .collect();
        assert_eq!(messages, ["404 GET /x", "listening"]);
    }
}
