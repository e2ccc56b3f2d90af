//! Idle keep-alive connections, per host, for reuse.
//!
//! Tornado's `simple_httpclient` has no pool (it always sends
//! `Connection: close`); this is the optional extra the client turns on
//! with [`ClientOptions::keep_alive`](super::ClientOptions::keep_alive).
//!
//! Invariants:
//! * Bounded: at most `max_per_host` idle connections per `(host, port)`
//!   and `max_total` overall; a connection that does not fit is closed.
//! * An idle connection that the server closes leaves the pool at once
//!   (its close callback removes it), so the pool never hands out a stream
//!   it knows is dead. One the server closes *while* we send on it is the
//!   client's retry case (see `client.rs`).
//! * A connection older than `max_idle_time` is closed instead of reused
//!   (servers drop idle connections after a while; ours after 300 s).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use crate::iostream::IOStream;

/// `(host, port)` of an origin (the scheme is always `http`).
pub(crate) type Key = (String, u16);

/// One idle connection.
struct Idle {
    /// Tells this entry apart when its close callback comes back.
    id: u64,
    /// The connection, with no read pending and nothing buffered.
    stream: IOStream,
    /// When it became idle.
    since: Instant,
}

/// The pool. Shared (`Rc<RefCell<_>>`) with the close callbacks of the
/// streams it holds, which reach it weakly.
pub(crate) struct Pool {
    /// Idle connections by origin, most recently used last.
    idle: HashMap<Key, Vec<Idle>>,
    /// Idle connections in all.
    count: usize,
    /// Cap per origin.
    max_per_host: usize,
    /// Cap overall.
    max_total: usize,
    /// Oldest idle connection that is still reused.
    max_idle_time: Duration,
    /// Next entry id.
    next_id: u64,
}

impl Pool {
    /// An empty pool with these caps.
    pub(crate) fn new(max_per_host: usize, max_total: usize, max_idle_time: Duration) -> Pool {
        Pool {
            idle: HashMap::new(),
            count: 0,
            max_per_host,
            max_total,
            max_idle_time,
            next_id: 0,
        }
    }

    /// Keep `stream` for reuse, or close it if the pool is full.
    pub(crate) fn put(pool: &Rc<RefCell<Pool>>, key: Key, stream: IOStream) {
        let mut p = pool.borrow_mut();
        let here = p.idle.get(&key).map_or(0, Vec::len);
        if stream.closed() || here >= p.max_per_host || p.count >= p.max_total {
            drop(p);
            stream.close();
            return;
        }
        let id = p.next_id;
        p.next_id += 1;
        let weak: Weak<RefCell<Pool>> = Rc::downgrade(pool);
        let k = key.clone();
        stream.set_close_callback(move || {
            if let Some(pool) = weak.upgrade() {
                pool.borrow_mut().remove(&k, id);
            }
        });
        p.idle.entry(key).or_default().push(Idle {
            id,
            stream,
            since: Instant::now(),
        });
        p.count += 1;
    }

    /// An idle connection to `key`, if a usable one is there.
    pub(crate) fn take(&mut self, key: &Key) -> Option<IOStream> {
        let list = self.idle.get_mut(key)?;
        let mut found = None;
        let mut stale = Vec::new();
        while let Some(idle) = list.pop() {
            self.count -= 1;
            idle.stream.clear_close_callback();
            let usable = !idle.stream.closed()
                && idle.stream.buffered_len() == 0
                && idle.since.elapsed() <= self.max_idle_time;
            if usable {
                found = Some(idle.stream);
                break;
            }
            stale.push(idle.stream);
        }
        if list.is_empty() {
            self.idle.remove(key);
        }
        for s in stale {
            s.close();
        }
        found
    }

    fn remove(&mut self, key: &Key, id: u64) {
        if let Some(list) = self.idle.get_mut(key) {
            let before = list.len();
            list.retain(|i| i.id != id);
            self.count -= before - list.len();
            if list.is_empty() {
                self.idle.remove(key);
            }
        }
    }

    /// Close every idle connection.
    pub(crate) fn clear(&mut self) -> Vec<IOStream> {
        self.count = 0;
        let streams: Vec<IOStream> = self
            .idle
            .drain()
            .flat_map(|(_, list)| list.into_iter().map(|i| i.stream))
            .collect();
        for s in &streams {
            s.clear_close_callback();
        }
        streams
    }

    /// Idle connections held.
    pub(crate) fn len(&self) -> usize {
        self.count
    }
}
