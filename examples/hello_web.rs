//! squall as a library: Tornado's "hello, world", plus one handler in the
//! callback style (Tornado's old `@asynchronous`).
//!
//! ```text
//! cargo run --example hello_web            # then:
//! curl http://127.0.0.1:8000/              # Hello, world
//! curl http://127.0.0.1:8000/slow?ms=500   # answers half a second later
//! ```
//!
//! The Tornado original:
//!
//! ```python
//! class MainHandler(tornado.web.RequestHandler):
//!     def get(self):
//!         self.write("Hello, world")
//!
//! app = tornado.web.Application([(r"/", MainHandler)])
//! app.listen(8000)
//! tornado.ioloop.IOLoop.current().start()
//! ```
use std::time::Duration;

use squall::http::HTTPServerOptions;
use squall::ioloop::IOLoop;
use squall::web::{Application, Ctx, HTTPError, HandlerResult, RequestHandler, Settings};

/// `GET /`: write and return; the response is finished for you.
struct MainHandler;

impl RequestHandler for MainHandler {
    fn get(&self, cx: &Ctx) -> HandlerResult {
        cx.write("Hello, world\n");
        Ok(())
    }
}

/// `GET /slow?ms=N`: return at once, answer later from a timer. Keeping a
/// clone of the `Ctx` is what keeps the response open.
struct SlowHandler;

impl RequestHandler for SlowHandler {
    fn get(&self, cx: &Ctx) -> HandlerResult {
        let ms: u64 = cx
            .get_argument("ms")?
            .parse()
            .map_err(|_| HTTPError::bad_request("ms must be a number"))?;
        if ms > 10_000 {
            return Err(HTTPError::bad_request("ms must be at most 10000"));
        }
        let later = cx.clone();
        IOLoop::current().call_later(Duration::from_millis(ms), move || {
            later.write(format!("answered after {ms} ms\n"));
            later.finish();
        });
        // If the client leaves first, nothing else is needed: the timer's
        // finish() goes nowhere. A long-poll would cancel its wait here.
        cx.on_connection_close(|| log::info!("client left before the answer"));
        Ok(())
    }
}

fn main() -> std::io::Result<()> {
    // Log lines batched per loop iteration (see `squall::logging`).
    squall::logging::init("info");
    let settings = Settings {
        // A real application reads this from its configuration.
        cookie_secret: b"change me: a long random string".to_vec(),
        ..Settings::default()
    };
    let mut app = Application::new(settings)?;
    app.route("/", MainHandler);
    app.route("/slow", SlowHandler);
    let addr = "127.0.0.1:8000".parse().expect("literal address");
    let (_server, bound) = app.listen(addr, HTTPServerOptions::default())?;
    log::info!("listening on http://{bound}/");
    IOLoop::current().start();
    Ok(())
}
