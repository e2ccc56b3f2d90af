//! `loadgen SCENARIO [--flag value]...`: run one benchmark scenario and print
//! one JSON summary line last. Exit status 0 when the scenario ran (its
//! figures may still report errors), 1 when it could not run, 2 on usage.

use serde_json::json;
use squall_loadgen::scenarios::{cart, hello, idle, longpoll, storm, wsfanout};
use std::time::Duration;

const USAGE: &str = "usage: loadgen SCENARIO [--flag value]...
scenarios:
  hello           --url http://127.0.0.1:P/hello --conns 50 --duration 10 [--pipeline 16] [--server-pid PID]
  longpoll-fanout --url http://127.0.0.1:P --n 1000 --rounds 3 [--server-pid PID] [--repoll after|immediate]
  ws-fanout       --url http://127.0.0.1:P --n 1000 --messages 10 --interval-ms 100 [--server-pid PID]
  idle            --url http://127.0.0.1:P --n 15000 --kind keepalive|longpoll|ws --server-pid PID
  cart-race       --url http://127.0.0.1:P --n 200 [--sessions auto|page|client] [--server-pid PID]
  connect-storm   --url http://127.0.0.1:P/hello --n 15000 [--timeout 20] [--server-pid PID]
  probe           --url http://127.0.0.1:P/healthz [--timeout 10]   (exit 0 once it answers 200)
Each scenario ends with one JSON line; an unknown flag lists the ones it takes.
See docs/benchmarks.md.";

fn probe(argv: &[String]) -> Result<serde_json::Value, String> {
    let a = squall_loadgen::cli::Args::parse(argv, &["url", "timeout"])?;
    let t = squall_loadgen::cli::Target::parse(&a.str("url", "http://127.0.0.1:8888/healthz"))?;
    let until = std::time::Instant::now() + Duration::from_secs_f64(a.num("timeout", 10.0)?);
    let mut last = String::new();
    while std::time::Instant::now() < until {
        let mut c = squall_loadgen::http::Client::new(&t);
        c.timeout = Duration::from_secs(2);
        match c.get(&t.path) {
            Ok(r) if r.status == 200 => return Ok(json!({"scenario": "probe", "status": 200})),
            Ok(r) => last = format!("status {}", r.status),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("{} did not answer 200: {last}", a.str("url", "")))
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some(scenario) = argv.first().cloned() else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    let rest = &argv[1..];
    let result = match scenario.as_str() {
        "hello" => hello::run(rest),
        "longpoll-fanout" => longpoll::run(rest),
        "ws-fanout" => wsfanout::run(rest),
        "idle" => idle::run(rest),
        "cart-race" => cart::run(rest),
        "connect-storm" => storm::run(rest),
        "probe" => probe(rest),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            return;
        }
        other => {
            eprintln!("unknown scenario {other:?}\n{USAGE}");
            std::process::exit(2);
        }
    };
    match result {
        Ok(v) => println!("{v}"),
        Err(e) => {
            eprintln!("{scenario}: {e}");
            println!("{}", json!({"scenario": scenario, "error": e}));
            std::process::exit(1);
        }
    }
}
