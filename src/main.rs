//! The `squall` binary. `squall echo` runs the line echo server.
fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("echo") {
        let addr = "127.0.0.1:8889".parse().expect("literal address");
        if let Err(e) = squall::apps::echo::listen(addr, squall::apps::echo::DEFAULT_MAX_LINE) {
            eprintln!("squall: {e}");
            std::process::exit(1);
        }
        squall::ioloop::IOLoop::current().start();
    }
}
