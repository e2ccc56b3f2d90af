//! The telnet echo server, the first example of squall.
//!
//! ```text
//! cargo run --example echo_server -- --port 8889 [--address 127.0.0.1] [--max-line 65536]
//! telnet 127.0.0.1 8889
//! ```
use std::net::SocketAddr;

fn main() {
    // Log lines batched per loop iteration (see `squall::logging`).
    squall::logging::init("info");
    let mut port: u16 = 8889;
    let mut address = String::from("127.0.0.1");
    let mut max_line = squall::apps::echo::DEFAULT_MAX_LINE;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = || inline.clone().or_else(|| args.next()).unwrap_or_default();
        match name.as_str() {
            "--port" => {
                port = value()
                    .parse()
                    .unwrap_or_else(|_| die("--port takes a number"))
            }
            "--address" => address = value(),
            "--max-line" => {
                max_line = value()
                    .parse()
                    .unwrap_or_else(|_| die("--max-line takes a number"))
            }
            "-h" | "--help" => {
                println!(
                    "usage: echo_server [--port 8889] [--address 127.0.0.1] [--max-line 65536]"
                );
                return;
            }
            other => die(&format!("unknown option {other} (try --help)")),
        }
    }
    let addr: SocketAddr = format!("{address}:{port}")
        .parse()
        .unwrap_or_else(|_| die("--address must be an IP address"));
    let ioloop = squall::ioloop::IOLoop::current();
    if let Err(e) = squall::apps::echo::listen(addr, max_line) {
        die(&format!("cannot listen on {addr}: {e}"));
    }
    ioloop.start();
}

fn die(msg: &str) -> ! {
    eprintln!("echo_server: {msg}");
    std::process::exit(2);
}
