//! What the operating system tells us about ourselves and about the server.
//!
//! - our own CPU time (`getrusage(RUSAGE_SELF)`), to flag client-bound runs;
//! - the server's CPU time (`/proc/PID/stat`, utime + stime, all threads);
//! - the server's resident memory (`VmRSS` in `/proc/PID/status`);
//! - the kernel's listen-queue counters (`/proc/net/netstat`, `TcpExt`);
//! - the open-file limit, and an abortive close (`SO_LINGER` 0) so that
//!   tens of thousands of client sockets do not sit in `TIME_WAIT`.

use std::os::fd::AsRawFd;
use std::time::Duration;

/// CPU time (user + system) this process has used so far.
pub fn self_cpu() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no memory effects.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// CPU seconds (user + system, all threads) used so far by process `pid`,
/// from `/proc/PID/stat`. Resolution is one clock tick (usually 10 ms).
pub fn proc_cpu(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: split after the last ')'.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 overall, so utime (14) and stime (15) are at 11 and 12 here.
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// Resident set size of process `pid` in KiB (`VmRSS` from `/proc/PID/status`).
pub fn proc_rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The parts of process `pid`'s resident set in KiB, `(RssAnon, RssFile +
/// RssShmem)`: heap and stacks apart from the mapped binary and libraries,
/// whose pages come in as code is first run and are not memory a
/// connection holds.
pub fn proc_rss_parts_kb(pid: u32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        s.lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((field("RssAnon:")?, field("RssFile:")? + field("RssShmem:")?))
}

/// Whether process `pid` still exists.
pub fn proc_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// `(ListenOverflows, ListenDrops)` from `/proc/net/netstat` (system-wide counters).
pub fn listen_counters() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut lines = s.lines();
    while let Some(head) = lines.next() {
        let vals = lines.next()?;
        if !head.starts_with("TcpExt:") {
            continue;
        }
        let names: Vec<&str> = head.split_whitespace().collect();
        let nums: Vec<&str> = vals.split_whitespace().collect();
        let get = |k: &str| -> Option<u64> {
            let i = names.iter().position(|n| *n == k)?;
            nums.get(i)?.parse().ok()
        };
        return Some((get("ListenOverflows")?, get("ListenDrops")?));
    }
    None
}

/// The soft limit on open files for this process.
pub fn nofile_limit() -> u64 {
    // SAFETY: getrlimit writes into the zeroed struct we own.
    let mut rl: libc::rlimit = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return 1024;
    }
    rl.rlim_cur
}

/// Make the next `close` of this socket abortive (RST, no `TIME_WAIT`).
pub fn set_linger_zero<S: AsRawFd>(s: &S) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads `l` for its stated size; errors are ignored on purpose.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// Cheap random 64-bit values for nonces, WebSocket keys and masks
/// (not cryptographic; xorshift seeded from the clock and pid).
pub struct Rng(u64);

impl Rng {
    pub fn new() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Rng(t ^ ((std::process::id() as u64) << 32) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
    /// A uuid4-shaped string (random, version and variant bits set).
    pub fn uuid4(&mut self) -> String {
        let mut b = [0u8; 16];
        self.fill(&mut b);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
    /// `n` lowercase hex digits.
    pub fn hex(&mut self, n: usize) -> String {
        let mut s = String::with_capacity(n);
        while s.len() < n {
            s.push_str(&format!("{:016x}", self.next_u64()));
        }
        s.truncate(n);
        s
    }
}

impl Default for Rng {
    fn default() -> Self {
        Rng::new()
    }
}

/// Segments this socket has retransmitted so far (`TCP_INFO`
/// `tcpi_total_retrans`; SYNs included): > 0 means the server side dropped
/// something, e.g. a SYN or handshake ACK refused by a full listen queue.
pub fn tcp_retransmits<S: AsRawFd>(s: &S) -> Option<u32> {
    // SAFETY: getsockopt writes at most `len` bytes into the zeroed struct we own.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            &mut info as *mut libc::tcp_info as *mut libc::c_void,
            &mut len,
        )
    };
    (rc == 0).then_some(info.tcpi_total_retrans)
}

/// Busy CPU seconds of the whole machine so far (all CPUs; `/proc/stat`
/// user + nice + system + irq + softirq + steal).
pub fn machine_busy() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let line = s.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy =
        f.first()? + f.get(1)? + f.get(2)? + f.get(5)? + f.get(6)? + f.get(7).unwrap_or(&0.0);
    Some(busy / clock_ticks())
}
