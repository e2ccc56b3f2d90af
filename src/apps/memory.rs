//! Giving memory back to the system after a crowd of connections leaves.
//!
//! No Tornado counterpart: CPython keeps what it freed too (its arenas and
//! glibc both), which is why Tornado's RSS stays high after a mass close.
//!
//! # Why
//!
//! When 15 000 connections close, squall frees everything they held (the
//! leak counters go back to zero), but the process RSS stayed 3-8x above
//! where it started: glibc's `free` keeps freed chunks for later `malloc`s
//! and only returns the *top* of the heap to the kernel, and only when more
//! than `M_TRIM_THRESHOLD` (128 KiB) is free there. Connection state is
//! thousands of small chunks spread over the heap, so one live allocation
//! near the top pins everything below it. `malloc_trim(0)` also releases
//! free pages in the *middle* of the heap (`madvise(MADV_DONTNEED)`), which
//! is what brings RSS back.
//!
//! # When
//!
//! `malloc_trim` walks the whole heap, so it must not run on the hot path
//! nor often. A [`PeriodicCallback`] looks at the number of open
//! connections every [`CHECK_EVERY`] (a counter read: nothing else) and
//! trims only when it has fallen to half or less of its highest value since
//! the last trim, by at least [`MIN_DROP`] connections ([`TrimPolicy`]).
//! A server whose crowd comes and goes trims once per wave; a steady one
//! never does. Before trimming it asks the loop to give back the spare
//! capacity of its tables ([`IOLoop::shrink_to_fit`]): their slots for
//! 15 000 connections would otherwise stay, and pin the pages around them.
//!
//! # The trim threshold
//!
//! [`start`] also raises glibc's `M_TRIM_THRESHOLD` to [`TRIM_THRESHOLD`]
//! (16 MiB). A broadcast to 10 000 WebSockets (or a long-poll fan-out)
//! queues ~7 MB of frames that are all freed at the end of the loop
//! iteration; with the default 128 KiB threshold glibc handed that memory
//! back each time and page-faulted it in again for the next broadcast
//! (perf, `ws-fanout --n 10000`: page faults 6.7 % and malloc 7.5 % of the
//! server's CPU during the broadcasts; 1.3 % and 2.2 % with the raised
//! threshold). The explicit trims above ignore the threshold, so memory
//! still comes back once connections go.
//!
//! # What stays
//!
//! After a wave of 15 000 chat WebSockets, RSS settles ~0.5 MB (~10 %)
//! above where it started; after keep-alive or long-poll waves, less. It
//! is heap (`RssAnon`), not code pages, and not live data (heaptrack: ~0.3
//! MB live, none of it per connection). It is glibc's per-thread cache
//! (tcache): up to 7 freed chunks per small size class stay cached for the
//! next `malloc`, count as in use, so `malloc_trim` cannot release their
//! pages, and after a wave of closes they are the crowd's last chunks,
//! scattered over the heap. Measured (`loadgen idle --kind ws --n 15000`):
//! `RssAnon` 720 KiB before, ~1 230 KiB after; with the cache switched off
//! (`GLIBC_TUNABLES=glibc.malloc.tcache_count=0`) 468 KiB after, at +2.5 %
//! instructions per `/hello` request (callgrind). glibc offers no call to
//! empty one thread's cache. Cycling it (take the 7 chunks of every size
//! class, refill the cache with fresh ones, free the old) won 200-280 KiB
//! for WebSockets but lost 60-230 KiB after keep-alive waves, whose cache
//! was not scattered: the fresh chunks cost pages of their own. So the
//! trimmer leaves the cache alone; an operator who wants memory back more
//! than those instructions can set the tunable.
//!
//! Only on Linux with glibc; elsewhere [`start`] runs the same policy but
//! trims nothing (other allocators have their own ways).

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use crate::ioloop::{IOLoop, PeriodicCallback};

/// How often the connection count is looked at.
pub const CHECK_EVERY: Duration = Duration::from_millis(500);

/// Fewest closed connections worth a trim: a few hundred connections free
/// too little to matter, and a trim costs a heap walk.
pub const MIN_DROP: usize = 1000;

/// glibc's `M_TRIM_THRESHOLD` while the trimmer runs (see the module docs).
pub const TRIM_THRESHOLD: usize = 16 * 1024 * 1024;

/// When to trim, as plain data (no clock, no allocator): fed the open
/// connection count at each check, it answers whether to trim now.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TrimPolicy {
    /// Most connections open at once since the last trim (or start).
    high_water: usize,
}

impl TrimPolicy {
    /// Record that `open` connections are open now; true if memory should
    /// be trimmed: at most half of the high-water mark is left, and at
    /// least [`MIN_DROP`] connections went. The mark then restarts from
    /// `open`.
    pub fn observe(&mut self, open: usize) -> bool {
        self.high_water = self.high_water.max(open);
        let dropped = self.high_water - open;
        if dropped >= MIN_DROP && open <= self.high_water / 2 {
            self.high_water = open;
            true
        } else {
            false
        }
    }
}

/// The running trimmer; it stops when this is dropped.
pub struct Trimmer {
    /// The periodic check; held here because the loop holds it weakly.
    _check: PeriodicCallback,
    /// Trims done so far (for `/metrics` and tests).
    trims: Rc<Cell<u64>>,
}

impl Trimmer {
    /// Trims done since start.
    pub fn trims(&self) -> u64 {
        self.trims.get()
    }
}

/// Start trimming on the current loop; `open_connections` counts what is
/// open (HTTP and WebSocket connections). Also raises the trim threshold
/// (module docs).
pub fn start(open_connections: impl Fn() -> usize + 'static) -> Trimmer {
    set_trim_threshold(TRIM_THRESHOLD);
    let trims = Rc::new(Cell::new(0));
    let counter = Rc::clone(&trims);
    let mut policy = TrimPolicy::default();
    let check = PeriodicCallback::new(CHECK_EVERY, move || {
        let open = open_connections();
        if policy.observe(open) {
            // The loop's tables first, so that what they free is trimmed too.
            IOLoop::current().shrink_to_fit();
            crate::web::release_spare_buffers();
            let released = trim();
            counter.set(counter.get() + 1);
            log::debug!("malloc_trim with {open} connections open: released={released}");
        }
    });
    check.start();
    Trimmer {
        _check: check,
        trims,
    }
}

/// Return free heap memory to the kernel (`malloc_trim(0)`); true if any
/// was released.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim() -> bool {
    // SAFETY: malloc_trim only walks and shrinks the allocator's own free
    // lists, under the allocator's lock; it is safe to call at any time.
    unsafe { libc::malloc_trim(0) != 0 }
}

/// Not glibc: nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim() -> bool {
    false
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_trim_threshold(bytes: usize) {
    let bytes = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt only sets an allocator parameter.
    if unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, bytes) } == 0 {
        log::warn!("mallopt(M_TRIM_THRESHOLD) refused");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_trim_threshold(_bytes: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_once_per_wave_of_closes() {
        let mut p = TrimPolicy::default();
        // A crowd arrives: nothing to give back.
        for open in [0, 5000, 15_000, 15_000] {
            assert!(!p.observe(open), "{open}");
        }
        // Part of it leaves, but more than half stays.
        assert!(!p.observe(9000));
        // Half gone: trim, and the mark restarts from here.
        assert!(p.observe(7000));
        assert!(!p.observe(7000));
        // The rest leaves: trim again.
        assert!(p.observe(0));
        assert!(!p.observe(0));
    }

    #[test]
    fn small_drops_never_trim() {
        let mut p = TrimPolicy::default();
        for _ in 0..3 {
            assert!(!p.observe(900));
            assert!(!p.observe(0), "fewer than MIN_DROP connections went");
        }
        // Slow churn at a steady level: never half gone.
        let mut p = TrimPolicy::default();
        for open in [10_000, 9000, 10_000, 8000, 10_000] {
            assert!(!p.observe(open));
        }
    }

    #[test]
    fn trim_can_be_called_any_time() {
        // Free 8 MB of small blocks (below the mmap threshold, so they
        // were heap memory), then trim: on glibc there is something to
        // release.
        let blocks: Vec<Vec<u8>> = (0..2000).map(|i| vec![i as u8; 4000]).collect();
        assert_eq!(blocks[1999][0], 207);
        drop(blocks);
        let released = trim();
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            assert!(released, "malloc_trim released nothing");
        }
    }
}
