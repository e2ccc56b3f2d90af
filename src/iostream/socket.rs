//! [`Socket`]: the TCP or Unix-domain socket under a stream, behind one
//! small enum so the rest of the stream need not care which.
//!
//! Mirrors the socket calls of Tornado's `tornado/iostream.py`
//! (`IOStream.read_from_fd`, `write_to_fd`, `get_fd_error`); Tornado's
//! `IOStream` wraps any socket object, where here the two kinds squall
//! uses are named.
//!
//! Nothing here blocks or retries: the socket is non-blocking, and
//! `WouldBlock` goes back to the caller, which keeps the parent's
//! *edge-triggered* invariant (`read_buffer.rs`, `flush.rs`).

use std::io::{self, IoSlice, Read, Write};

use mio::net::TcpStream;
#[cfg(unix)]
use mio::net::UnixStream;

/// The socket under a stream.
pub(super) enum Socket {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(UnixStream),
}

impl Socket {
    pub(super) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.read(buf),
            #[cfg(unix)]
            Socket::Unix(s) => s.read(buf),
        }
    }

    pub(super) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.write(buf),
            #[cfg(unix)]
            Socket::Unix(s) => s.write(buf),
        }
    }

    /// `writev`, or a plain `send` for one buffer: the kernel's vectored
    /// path costs measurably more per call, and one buffer is the usual
    /// case (a response written at once).
    pub(super) fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if let [one] = bufs {
            return self.write(one);
        }
        match self {
            Socket::Tcp(s) => s.write_vectored(bufs),
            #[cfg(unix)]
            Socket::Unix(s) => s.write_vectored(bufs),
        }
    }

    pub(super) fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            Socket::Tcp(s) => s.take_error(),
            #[cfg(unix)]
            Socket::Unix(s) => s.take_error(),
        }
    }

    pub(super) fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            Socket::Tcp(s) => s,
            #[cfg(unix)]
            Socket::Unix(s) => s,
        }
    }
}
