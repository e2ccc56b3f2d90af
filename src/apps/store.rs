//! Persistence for the apps: append-only JSON-lines files, written by a
//! dedicated thread so that saving never blocks the loop.
//!
//! Tornado's demos keep everything in memory; squall promises that what
//! users create survives a restart when `--data-dir` is given. The
//! smallest design that keeps the reactor invariant ("nothing inside the
//! loop blocks") is the one Redis uses for its AOF:
//!
//! ```text
//!  loop thread                         writer thread ("squall-store")
//!  AppendLog::append(line) ──channel──▶ write every queued line, fsync,
//!  (never waits: a full queue           wait for more
//!   refuses the line, and the
//!   request that made it fails)
//! ```
//!
//! Start-up is the one place that reads: [`for_each_line`] runs before the
//! loop starts, and [`rewrite`] compacts a file there (write a temporary
//! file, then rename it over the old one, so a crash leaves either).
//!
//! The window: a line is on disk a few milliseconds after `append`, not
//! before the response that follows it. A crash in that window loses it.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, SyncSender, TrySendError};

use crate::web::naming;

/// Lines waiting for the writer thread before `append` starts dropping
/// them: the queue is bounded like every other buffer.
pub const APPEND_QUEUE_LINES: usize = 16 * 1024;

/// Longest line read back at start-up; longer ones are skipped (a line is
/// one record of bounded fields, so only corruption makes one this long).
pub const MAX_LINE_BYTES: usize = 256 * 1024;

/// Why [`AppendLog::append`] did not take a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendRefused {
    /// [`APPEND_QUEUE_LINES`] lines already wait for the disk.
    QueueFull,
    /// The writer thread has stopped.
    WriterGone,
}

impl std::fmt::Display for AppendRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AppendRefused::QueueFull => "write queue full",
            AppendRefused::WriterGone => "writer thread is gone",
        })
    }
}

/// An append-only file of lines, written off the loop.
pub struct AppendLog {
    /// Feeds the writer thread; its end dropping stops the thread.
    lines: SyncSender<String>,
    /// The file, for log messages.
    path: PathBuf,
    /// The writer thread, joined by [`close`](Self::close).
    writer: std::thread::JoinHandle<()>,
}

impl AppendLog {
    /// Open `path` for appending (creating it and its directory) and start
    /// the writer thread.
    pub fn open(path: &Path) -> io::Result<AppendLog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(naming("cannot create", dir))?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(naming("cannot open", path))?;
        let (tx, rx) = mpsc::sync_channel::<String>(APPEND_QUEUE_LINES);
        let shown = path.display().to_string();
        let writer = std::thread::Builder::new()
            .name("squall-store".into())
            .spawn(move || {
                // One write and one fsync per batch: under load the batch
                // grows and the cost per line shrinks.
                while let Ok(first) = rx.recv() {
                    let mut batch = first;
                    batch.push('\n');
                    while let Ok(more) = rx.try_recv() {
                        batch.push_str(&more);
                        batch.push('\n');
                    }
                    if let Err(e) = file
                        .write_all(batch.as_bytes())
                        .and_then(|()| file.sync_data())
                    {
                        log::error!("cannot write to {shown}: {e}");
                    }
                }
            })?;
        Ok(AppendLog {
            lines: tx,
            path: path.to_path_buf(),
            writer,
        })
    }

    /// A log whose writer thread has already stopped, so every
    /// [`append`](Self::append) is refused: for tests of the refusal path.
    #[cfg(test)]
    pub(crate) fn without_writer(path: &Path) -> AppendLog {
        let (lines, _gone) = mpsc::sync_channel::<String>(1);
        AppendLog {
            lines,
            path: path.to_path_buf(),
            writer: std::thread::spawn(|| {}),
        }
    }

    /// Stop accepting lines and wait until every queued line is on disk.
    /// (Dropping the log instead lets the thread finish on its own.)
    pub fn close(self) {
        drop(self.lines);
        if self.writer.join().is_err() {
            log::error!("{}: the writer thread panicked", self.path.display());
        }
    }

    /// Queue `line` (without its newline) for writing. Never blocks: if the
    /// writer is that far behind (or gone), the line is refused and an
    /// error logged; the caller must then refuse what the line records
    /// (answer 503), so that nothing a client was told is saved is lost.
    pub fn append(&self, line: String) -> Result<(), AppendRefused> {
        let refused = match self.lines.try_send(line) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Full(_)) => AppendRefused::QueueFull,
            Err(TrySendError::Disconnected(_)) => AppendRefused::WriterGone,
        };
        log::error!("{}: {refused}; the record is refused", self.path.display());
        Err(refused)
    }
}

/// Call `f` with every line of `path` (none if it does not exist yet).
/// Start-up only: this reads the disk on the calling thread.
pub fn for_each_line(path: &Path, mut f: impl FnMut(&str)) -> io::Result<()> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(naming("cannot read", path)(e)),
    };
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    loop {
        line.clear();
        // Bounded read: take at most MAX_LINE_BYTES + 1 bytes of this line.
        let n = io::Read::take(&mut reader, MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(naming("cannot read", path))?;
        if n == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') && n > MAX_LINE_BYTES {
            log::warn!("{}: skipping an over-long line", path.display());
            // Drop the rest of it.
            let mut rest = Vec::new();
            reader
                .read_until(b'\n', &mut rest)
                .map_err(naming("cannot read", path))?;
            continue;
        }
        match std::str::from_utf8(&line) {
            Ok(text) if !text.trim().is_empty() => f(text.trim_end()),
            Ok(_) => {}
            Err(_) => log::warn!("{}: skipping a line that is not UTF-8", path.display()),
        }
    }
}

/// Replace the contents of `path` with `lines` (start-up compaction):
/// written to `path.tmp`, synced, then renamed over `path`.
pub fn rewrite<'a>(path: &Path, lines: impl IntoIterator<Item = &'a str>) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let write = || -> io::Result<()> {
        let mut out = io::BufWriter::new(File::create(&tmp)?);
        for line in lines {
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")?;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()
    };
    write().map_err(naming("cannot write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(naming("cannot replace", path))
}

/// The cookie secret kept in `dir/cookie_secret`, created (random, 32
/// bytes, hex, mode 0600) on first use, so logins survive a restart.
pub fn load_or_create_secret(dir: &Path) -> io::Result<Vec<u8>> {
    let path = dir.join("cookie_secret");
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().as_bytes().to_vec()),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(naming("cannot read", &path)(e)),
    }
    std::fs::create_dir_all(dir).map_err(naming("cannot create", dir))?;
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw)
        .map_err(|e| io::Error::other(format!("cannot generate a cookie secret: {e}")))?;
    let hex = crate::web::signed::hex_encode(&raw);
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .map_err(naming("cannot create", &path))?;
    file.write_all(hex.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(naming("cannot write", &path))?;
    Ok(hex.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("squall-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn lines_round_trip_and_rewrite() {
        let dir = temp_dir("lines");
        let path = dir.join("x.jsonl");
        let log = AppendLog::open(&path).expect("open");
        assert_eq!(log.append("one".into()), Ok(()));
        assert_eq!(log.append("two".into()), Ok(()));
        log.close();
        // A log that can no longer write refuses, so its caller can too.
        let gone = AppendLog::without_writer(&path);
        assert_eq!(gone.append("three".into()), Err(AppendRefused::WriterGone));
        let mut seen = Vec::new();
        for_each_line(&path, |l| seen.push(l.to_string())).expect("read");
        assert_eq!(seen, ["one", "two"]);
        rewrite(&path, ["two"]).expect("rewrite");
        seen.clear();
        for_each_line(&path, |l| seen.push(l.to_string())).expect("read");
        assert_eq!(seen, ["two"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_file_is_empty_and_secret_is_stable() {
        let dir = temp_dir("secret");
        let mut n = 0;
        for_each_line(&dir.join("none"), |_| n += 1).expect("read");
        assert_eq!(n, 0);
        let a = load_or_create_secret(&dir).expect("create");
        let b = load_or_create_secret(&dir).expect("load");
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
