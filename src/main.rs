//! The `squall` binary: `squall` serves the demo apps, `squall echo` the
//! line echo server. `squall --help` lists the options.
use squall::apps::{config, echo, shutdown, site};
use squall::ioloop::IOLoop;

fn main() {
    squall::logging::init("info");
    let config = match config::parse(std::env::args_os().skip(1)) {
        Ok(Some(c)) => c,
        Ok(None) => {
            println!("{}", config::HELP);
            return;
        }
        Err(e) => {
            eprintln!("squall: {e}\n(try squall --help)");
            std::process::exit(2);
        }
    };
    let ioloop = IOLoop::current();
    // Kept until the loop ends: parts of the site (the memory trimmer) run
    // only while it lives.
    let mut site = None;
    match config.command {
        config::Command::Echo => {
            let addr = std::net::SocketAddr::new(config.address, config.port);
            if let Err(e) = echo::listen_with(addr, config.max_line, &config.bind_options()) {
                eprintln!("squall: cannot listen on {addr}: {e}");
                std::process::exit(1);
            }
        }
        config::Command::Serve => match site::build(&config) {
            Ok(s) => {
                for addr in &s.addrs {
                    log::info!("squall listening on http://{addr}/");
                }
                let shown = |dir: &Option<std::path::PathBuf>| match dir {
                    Some(dir) => dir.display().to_string(),
                    None => "built into the binary".to_string(),
                };
                log::info!(
                    "templates: {}; static files: {}",
                    shown(&config.template_path),
                    shown(&config.static_path)
                );
                let server = s.server.clone();
                if let Err(e) = shutdown::install(
                    &ioloop,
                    config.shutdown_grace,
                    s.draining.clone(),
                    move || server.stop(),
                ) {
                    log::warn!("no graceful shutdown (cannot install signal handlers): {e}");
                }
                site = Some(s);
            }
            Err(e) => {
                eprintln!("squall: cannot start: {e}");
                std::process::exit(1);
            }
        },
    }
    ioloop.start();
    drop(site);
}
