//! Load generator for the line echo server: N clients, each sending a line
//! (or `--depth` lines), waiting for the whole echo, and repeating, for a
//! fixed time. Prints round trips/s, MB/s and round-trip latency.
//!
//! ```text
//! cargo run --release --example echo_server -- --port 8899 &
//! cargo run --release --example echo_bench -- --addr 127.0.0.1:8899 \
//!     --clients 1000 --duration 10 --size 64 --depth 1
//! ```
//!
//! `benches/echo.sh` runs it against squall (and, optionally, Tornado)
//! with the server and this client pinned to different CPUs.
//!
//! The client is a plain single-threaded mio loop, independent of squall's
//! own IOLoop, so it measures the server rather than itself. It checks every
//! byte that comes back against what was sent and exits non-zero if a
//! connection fails or an echo differs. A line is `size` bytes including
//! its `\n`; a round is `depth` lines written back to back; a round trip is
//! counted per line. MB/s counts echoed bytes (one direction), 10^6 bytes.
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

struct Options {
    addr: SocketAddr,
    clients: usize,
    duration: Duration,
    size: usize,
    depth: usize,
}

/// One client connection.
struct Conn {
    sock: TcpStream,
    connected: bool,
    /// Bytes of the current round written / echoed back so far.
    sent: usize,
    received: usize,
    /// When the current round started.
    started: Instant,
}

fn main() {
    let opts = parse_args();
    match run(&opts) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("echo_bench: {e}");
            std::process::exit(1);
        }
    }
}

fn run(o: &Options) -> io::Result<()> {
    // One round: `depth` lines of `size` bytes, no '\n' but the last byte.
    let mut line: Vec<u8> = (0..o.size - 1).map(|i| b'a' + (i % 26) as u8).collect();
    line.push(b'\n');
    let round: Vec<u8> = line.repeat(o.depth);

    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut conns: Vec<Conn> = Vec::with_capacity(o.clients);
    for i in 0..o.clients {
        let mut sock = TcpStream::connect(o.addr)?;
        poll.registry()
            .register(&mut sock, Token(i), Interest::READABLE | Interest::WRITABLE)?;
        conns.push(Conn {
            sock,
            connected: false,
            sent: 0,
            received: 0,
            started: Instant::now(),
        });
    }

    // Phase 1: wait until every client is connected (bounded).
    let connect_deadline = Instant::now() + Duration::from_secs(10);
    let mut connected = 0;
    while connected < o.clients {
        let left = connect_deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::other(format!(
                "only {connected} of {} clients connected",
                o.clients
            )));
        }
        poll.poll(&mut events, Some(left))?;
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            if c.connected || !(ev.is_writable() || ev.is_error()) {
                continue;
            }
            if let Some(e) = c.sock.take_error()? {
                return Err(e);
            }
            match c.sock.peer_addr() {
                Ok(_) => {
                    c.sock.set_nodelay(true)?;
                    c.connected = true;
                    connected += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
                Err(e) => return Err(e),
            }
        }
    }

    // Phase 2: every client starts a round; run for `duration`.
    let start = Instant::now();
    let deadline = start + o.duration;
    let mut rounds: u64 = 0;
    let mut latencies_us: Vec<u32> = Vec::with_capacity(1 << 20);
    let mut scratch = vec![0u8; 256 * 1024];
    for c in conns.iter_mut() {
        c.started = Instant::now();
        drive(
            c,
            &round,
            &mut scratch,
            deadline,
            &mut rounds,
            &mut latencies_us,
        )?;
    }
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        poll.poll(&mut events, Some(deadline - now))?;
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            drive(
                c,
                &round,
                &mut scratch,
                deadline,
                &mut rounds,
                &mut latencies_us,
            )?;
        }
    }
    let secs = start.elapsed().as_secs_f64();

    latencies_us.sort_unstable();
    let pct = |p: f64| -> f64 {
        if latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((latencies_us.len() as f64 - 1.0) * p).round() as usize;
        latencies_us[i] as f64 / 1000.0
    };
    let lines = rounds * o.depth as u64;
    let bytes = lines * o.size as u64;
    println!(
        "clients={} size={} depth={} secs={:.2} round_trips={} rt_per_s={:.0} mb_per_s={:.2} \
         round_p50_ms={:.3} round_p99_ms={:.3}",
        o.clients,
        o.size,
        o.depth,
        secs,
        lines,
        lines as f64 / secs,
        bytes as f64 / secs / 1e6,
        pct(0.50),
        pct(0.99),
    );
    Ok(())
}

/// Move one client forward as far as the socket allows: write the rest of
/// the round, read what came back (checking it), and when the whole round
/// is back start the next one. Edge-triggered: stops only at WouldBlock.
fn drive(
    c: &mut Conn,
    round: &[u8],
    scratch: &mut [u8],
    deadline: Instant,
    rounds: &mut u64,
    latencies_us: &mut Vec<u32>,
) -> io::Result<()> {
    loop {
        let mut progressed = false;
        while c.sent < round.len() {
            match c.sock.write(&round[c.sent..]) {
                Ok(0) => return Err(io::Error::other("server stopped taking bytes")),
                Ok(n) => {
                    c.sent += n;
                    progressed = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        loop {
            // Never read past this round: the server echoes only what was
            // sent, so more would be a bug worth reporting.
            let want = (round.len() - c.received).min(scratch.len());
            if want == 0 {
                break;
            }
            match c.sock.read(&mut scratch[..want]) {
                Ok(0) => return Err(io::Error::other("server closed a connection")),
                Ok(n) => {
                    if scratch[..n] != round[c.received..c.received + n] {
                        return Err(io::Error::other("echo differs from what was sent"));
                    }
                    c.received += n;
                    progressed = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if c.received == round.len() {
            let now = Instant::now();
            if now < deadline {
                *rounds += 1;
                let us = now.duration_since(c.started).as_micros();
                latencies_us.push(u32::try_from(us).unwrap_or(u32::MAX));
            }
            c.sent = 0;
            c.received = 0;
            c.started = now;
            if now >= deadline {
                return Ok(());
            }
            continue;
        }
        if !progressed {
            return Ok(());
        }
    }
}

fn parse_args() -> Options {
    let mut o = Options {
        addr: "127.0.0.1:8889".parse().expect("literal"),
        clients: 1000,
        duration: Duration::from_secs(10),
        size: 64,
        depth: 1,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = || inline.clone().or_else(|| args.next()).unwrap_or_default();
        let bad = |what: &str| -> ! {
            eprintln!("echo_bench: {what} (try --help)");
            std::process::exit(2)
        };
        match name.as_str() {
            "--addr" => o.addr = value().parse().unwrap_or_else(|_| bad("--addr ip:port")),
            "--clients" => o.clients = value().parse().unwrap_or_else(|_| bad("--clients N")),
            "--duration" => {
                let s: f64 = value()
                    .parse()
                    .unwrap_or_else(|_| bad("--duration SECONDS"));
                o.duration = Duration::from_secs_f64(s);
            }
            "--size" => o.size = value().parse().unwrap_or_else(|_| bad("--size BYTES")),
            "--depth" => o.depth = value().parse().unwrap_or_else(|_| bad("--depth LINES")),
            "-h" | "--help" => {
                println!(
                    "usage: echo_bench [--addr 127.0.0.1:8889] [--clients 1000] \
                     [--duration 10] [--size 64] [--depth 1]"
                );
                std::process::exit(0);
            }
            other => bad(&format!("unknown option {other}")),
        }
    }
    if o.size < 1 || o.depth < 1 || o.clients < 1 {
        eprintln!("echo_bench: --size, --depth and --clients must be at least 1");
        std::process::exit(2);
    }
    o
}
