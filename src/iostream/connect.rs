//! Connecting out: [`IOStream::connect`] starts a non-blocking TCP connect,
//! and [`finish_connect`] reports how it went once the socket turns
//! writable (or fails).
//!
//! Mirrors `IOStream.connect` and `_handle_connect` of Tornado's
//! `tornado/iostream.py`.
//!
//! Relies on the parent's invariants: the socket is registered for both
//! directions from the start (*edge-triggered*), so the writable edge that
//! ends the handshake needs no re-registration; writes issued before it
//! wait in the buffer (`write_blocked` is set until then); and the connect
//! callback is queued, never called inside the event handler.

use std::io;
use std::net::SocketAddr;

use mio::net::TcpStream;

use super::close::close_inner;
use super::flush::flush;
use super::{IOStream, Socket, StreamError, StreamInner};

/// Callback for `connect`: `Ok(())` once connected, or why it failed.
pub type ConnectCallback = Box<dyn FnOnce(Result<(), StreamError>)>;

impl IOStream {
    /// Start a non-blocking TCP connect to `addr` (Tornado's
    /// `IOStream.connect`). The stream is usable at once: reads and writes
    /// issued now are served when the connection is up. `callback` gets
    /// `Ok(())` when connected, or the error (the stream is then closed).
    pub fn connect(
        addr: SocketAddr,
        callback: impl FnOnce(Result<(), StreamError>) + 'static,
    ) -> io::Result<IOStream> {
        let socket = TcpStream::connect(addr)?;
        Self::register(Socket::Tcp(socket), Some(addr), Some(Box::new(callback)))
    }
}

/// The connect finished (writable) or failed (error/hup).
pub(super) fn finish_connect(st: &mut StreamInner) {
    let Some(cb) = st.connect_callback.take() else {
        return;
    };
    let err = match st.socket.as_ref().map(|s| s.take_error()) {
        Some(Ok(None)) => match &st.socket {
            Some(Socket::Tcp(s)) => match s.peer_addr() {
                Ok(_) => None,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                    // Spurious wake-up before the handshake finished.
                    st.connect_callback = Some(cb);
                    return;
                }
                Err(e) => Some(StreamError::from(e)),
            },
            _ => None,
        },
        Some(Ok(Some(e))) | Some(Err(e)) => Some(StreamError::from(e)),
        None => Some(StreamError::Closed),
    };
    match err {
        None => {
            st.write_blocked = false;
            st.ioloop.add_callback(move || cb(Ok(())));
            if st.write_buf.len > 0 {
                flush(st);
            }
        }
        Some(e) => {
            log::debug!("connect to {:?} failed: {e}", st.peer);
            st.ioloop.add_callback({
                let e = e.clone();
                move || cb(Err(e))
            });
            close_inner(st, e);
        }
    }
}
