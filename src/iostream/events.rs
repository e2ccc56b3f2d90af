//! The readiness handler: what a stream does when the loop says its socket
//! is readable, writable, hung up or failed ([`handle_events`]).
//!
//! Mirrors `_handle_events` of Tornado's `tornado/iostream.py`. The order
//! here: finish a pending connect, then write, then read.
//!
//! The loop holds the stream weakly, through the [`OnReady`] impl here, so
//! a stream whose handles are all gone gets no more events (*dropping the
//! last handle closes the socket*). This is the exception in the parent's
//! first invariant: a read that the new bytes met is completed here, after
//! the borrow is released and with nothing of the user's on the stack.

use std::cell::RefCell;
use std::rc::Rc;

use super::connect::finish_connect;
use super::flush::flush;
use super::read_deliver::{handle_read, Delivery};
use super::StreamInner;
use crate::ioloop::{OnReady, Ready};

impl OnReady for RefCell<StreamInner> {
    fn on_ready(self: Rc<Self>, ready: Ready) {
        handle_events(&self, ready);
    }
}

/// The readiness handler registered with the loop.
fn handle_events(inner: &Rc<RefCell<StreamInner>>, ready: Ready) {
    let mut st = inner.borrow_mut();
    if st.closed.is_some() {
        return;
    }
    if st.connect_callback.is_some() {
        if !(ready.writable || ready.error || ready.hup) {
            return;
        }
        finish_connect(&mut st);
        if st.closed.is_some() {
            return;
        }
    }
    if ready.writable {
        st.write_blocked = false;
        if st.write_buf.len > 0 {
            flush(&mut st);
            if st.closed.is_some() {
                return;
            }
        }
    }
    if ready.readable || ready.hup || ready.error {
        if st.read_failed || st.input_ended {
            return;
        }
        st.peer_closed |= ready.hup || ready.error;
        let met = handle_read(&mut st, Delivery::ToCaller);
        // The loop is dispatching this event: nothing of the user's is on
        // the stack and the borrow is released, so a read met by the bytes
        // just received is delivered here, not queued (see the invariants
        // in `iostream.rs`).
        drop(st);
        if let Some((completion, data)) = met {
            completion.complete(Ok(data));
        }
    }
}
