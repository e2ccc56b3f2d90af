//! [`StreamError`]: why a read failed or a stream closed.
//!
//! Mirrors the exceptions of Tornado's `tornado/iostream.py`
//! (`StreamClosedError`, `UnsatisfiableReadError`, `StreamBufferFullError`)
//! as one enum. A read that fails gets one as its `Err`, and
//! [`IOStream::error`](super::IOStream::error) says which one closed the
//! stream.

use std::fmt;
use std::io;

/// Why a read failed or a stream closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamError {
    /// The stream was closed (by the peer, or locally by `close`).
    Closed,
    /// `read_until` found no delimiter within `max_bytes` bytes.
    Unsatisfiable {
        /// The limit that was exceeded.
        max_bytes: usize,
    },
    /// The read buffer reached `max_buffer_size` without meeting the read.
    BufferFull {
        /// The limit that was reached.
        max_buffer_size: usize,
    },
    /// A write would have grown the write buffer past its cap.
    WriteBufferFull {
        /// The limit that would have been exceeded.
        max_write_buffer_size: usize,
    },
    /// A socket error (reset, refused, ...).
    Io(io::ErrorKind, String),
    /// A second read was asked for while one was pending.
    AlreadyReading,
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamError::Closed => write!(f, "stream is closed"),
            StreamError::Unsatisfiable { max_bytes } => {
                write!(f, "delimiter not found within {max_bytes} bytes")
            }
            StreamError::BufferFull { max_buffer_size } => {
                write!(
                    f,
                    "reached maximum read buffer size ({max_buffer_size} bytes)"
                )
            }
            StreamError::WriteBufferFull {
                max_write_buffer_size,
            } => write!(
                f,
                "reached maximum write buffer size ({max_write_buffer_size} bytes)"
            ),
            StreamError::Io(_, msg) => write!(f, "{msg}"),
            StreamError::AlreadyReading => write!(f, "already reading"),
        }
    }
}

impl std::error::Error for StreamError {}

impl From<io::Error> for StreamError {
    fn from(e: io::Error) -> StreamError {
        StreamError::Io(e.kind(), e.to_string())
    }
}
