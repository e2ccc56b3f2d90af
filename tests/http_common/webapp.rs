//! A small web [`Application`] exercising the web layer, for the web tests.
//!
//! | route            | flags            | what it does                                  |
//! |------------------|------------------|-----------------------------------------------|
//! | `/form`          |                  | GET: form with `xsrf_form_html`; POST: `posted <name>` |
//! | `/login`         |                  | GET `?name=`: sets the signed user cookie     |
//! | `/private`       | authenticated    | `hello <user>`                                |
//! | `/a/private`     | authenticated api| `{"user": ...}`                               |
//! | `/arg`, `/a/arg` | (api)            | `get_argument("name")`                        |
//! | `/upload`        | no_xsrf          | multipart: JSON of the `title` and `file`     |
//! | `/fast`          |                  | `fast`                                        |
//! | `/slow`          |                  | finishes from a 1 s timer; reports `slow-pending` |
//! | `/dropped`       |                  | drops its last Ctx clone unfinished (→ 500)   |
//! | `/dropped-flushed` |                | flushes, then drops unfinished (→ cut short)  |
//! | `/pending`       |                  | never finishes; reports `pending`, and `closed` from on_connection_close |
//! | `/stream`        |                  | `a`, flush, `b` + flush + `c` from a timer    |
//! | `/render`        |                  | renders `<script>` through a template         |
//! | `/big`           |                  | 4000 bytes of text (ETag, gzip)               |
//! | `/big-json`      |                  | `/big`'s text as a JSON string (implied type) |
//! | `/big-html`      |                  | `/big`'s text, default `Content-Type`         |
//! | `/ctype?case=`   |                  | sets, adds and clears `Content-Type` per `case` |
//! | `/a/fast`        | api              | POST only: `{"ok": true}`                     |
//! | `/own-headers`   |                  | sets Server, Date, Connection, Transfer-Encoding itself |

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
use std::sync::mpsc::Sender;
use std::time::Duration;

use squall::http::{HTTPServer, HTTPServerOptions};
use squall::ioloop::IOLoop;
use squall::web::{Application, Ctx, HandlerResult, RequestHandler, Settings};

use super::TestServer;

/// The cookie secret of the test application.
pub const SECRET: &[u8] = b"the test application's cookie secret";

/// The text `/big` serves.
pub fn big_text() -> String {
    (0..100)
        .map(|i| format!("line {i:03} of a compressible text body...\n"))
        .collect()
}

/// Start the test application; handlers report events on `events`.
pub fn start(events: Sender<&'static str>) -> TestServer {
    let templates = super::temp_dir("templates");
    write_templates(&templates);
    let dir = templates.clone();
    TestServer::start(move || {
        let settings = Settings {
            cookie_secret: SECRET.to_vec(),
            template_path: Some(templates),
            ..Settings::default()
        };
        let mut app = Application::new(settings).expect("application");
        app.route("/form", Form);
        app.route("/login", Login);
        app.route("/private", Private).authenticated();
        app.route("/a/private", Private).authenticated().api();
        app.route("/arg", Arg);
        app.route("/a/arg", Arg).api();
        app.route("/upload", Upload).no_xsrf();
        app.route("/fast", Fast);
        app.route("/own-headers", OwnHeaders);
        app.route("/frozen", Frozen).no_xsrf();
        app.route("/a/fast", Fast).api();
        app.route(
            "/slow",
            Slow {
                events: events.clone(),
            },
        );
        app.route("/dropped", Dropped { flush: false });
        app.route("/dropped-flushed", Dropped { flush: true });
        app.route(
            "/pending",
            Pending {
                events: events.clone(),
                waiting: Rc::default(),
            },
        );
        for (path, mode) in [
            ("/handle/finish", HandleMode::Finish),
            ("/handle/drop", HandleMode::Drop),
            ("/handle/park", HandleMode::Park),
        ] {
            app.route(
                path,
                WithHandle {
                    events: events.clone(),
                    mode,
                    parked: Rc::default(),
                },
            );
        }
        app.route("/stream", Stream);
        app.route("/render", Render);
        app.route("/big", Big);
        app.route("/big-json", BigJson);
        app.route("/big-html", BigHtml);
        app.route("/ctype", ContentTypeCases);
        app.route("/busy", Busy);
        HTTPServer::new(HTTPServerOptions::default(), app.into_callback())
    })
    .remove_on_drop(dir)
}

fn write_templates(dir: &Path) {
    std::fs::write(
        dir.join("form.html"),
        "<form method=\"post\" action=\"/form\">{{ xsrf_form_html }}\
         <input name=\"name\"></form>\n",
    )
    .expect("template");
    std::fs::write(
        dir.join("escape.html"),
        "<p>{{ msg }}</p><p>{{ trusted | safe }}</p>\n",
    )
    .expect("template");
}

struct Form;
impl RequestHandler for Form {
    fn allowed_methods(&self) -> &[&str] {
        &["GET", "HEAD", "POST"]
    }

    fn get(&self, cx: &Ctx) -> HandlerResult {
        cx.render("form.html", serde_json::json!({}))
    }
    fn post(&self, cx: &Ctx) -> HandlerResult {
        cx.write(format!("posted {}", cx.get_argument("name")?));
        Ok(())
    }
}

struct Login;
impl RequestHandler for Login {
    fn get(&self, cx: &Ctx) -> HandlerResult {
        cx.set_current_user(&cx.get_argument("name")?)?;
        cx.write("ok");
        Ok(())
    }
}

struct Private;
impl RequestHandler for Private {
    fn get(&self, cx: &Ctx) -> HandlerResult {
        let user = cx.current_user().unwrap_or("?").to_string();
        if cx.request().path().starts_with("/a/") {
            cx.write_json(&serde_json::json!({ "user": user }));
        } else {
            cx.write(format!("hello {user}"));
        }
        Ok(())
    }
}

struct Arg;
impl RequestHandler for Arg {
    fn get(&self, cx: &Ctx) -> HandlerResult {
        cx.write(format!("name={}", cx.get_argument("name")?));
        Ok(())
    }
}

struct Upload;
impl RequestHandler for Upload {
    fn allowed_methods(&self) -> &[&str] {
        &["POST"]
    }

    fn post(&self, cx: &Ctx) -> HandlerResult {
        let title = cx.get_body_argument("title")?;
        let files = cx.files()?;
        let Some(file) = files.get_first("file") else {
            return Err(squall::web::HTTPError::bad_request("no file"));
        };
        cx.write_json(&serde_json::json!({
            "title": title,
            "filename": file.filename,
            "content_type": file.content_type,
            "body": String::from_utf8_lossy(&file.body),
        }));
        Ok(())
    }
}

/// Sets the headers the responder otherwise writes or owns.
struct OwnHeaders;
impl RequestHandler for OwnHeaders {
    fn get(&self, cx: &Ctx) -> HandlerResult {
        cx.set_header("Server", "custom/1");
        cx.set_header("Date", "Thu, 01 Jan 1970 00:00:00 GMT");
        cx.set_header("Connection", "close");
        cx.set_header("Transfer-Encoding", "chunked");
        cx.write("own");
        Ok(())
    }
}

/// Declares POST but refuses it today with a 405 of its own, sent by hand
/// (`send_error`, not an `Err`), with a header set before the refusal.
struct Frozen;
impl RequestHandler for Frozen {
    fn allowed_methods(&self) -> &[&str] {
        &["GET", "HEAD", "POST"]
    }

    fn get(&self, cx: &Ctx) -> HandlerResult {
        cx.write("frozen");
        Ok(())
    }
    fn post(&self, cx: &Ctx) -> HandlerResult {
        cx.set_header("Allow-Later", "yes");
        cx.send_error(405, "frozen: read-only until the migration ends");
        Ok(())
    }
}

struct Fast;
impl RequestHandler for Fast {
    fn allowed_methods(&self) -> &[&str] {
        &["GET", "HEAD", "POST"]
    }

    fn get(&self, cx: &Ctx) -> HandlerResult {
        cx.set_header("Content-Type", "text/plain");
        cx.write("fast");
        Ok(())
    }
    fn post(&self, cx: &Ctx) -> HandlerResult {
        cx.write_json(&serde_json::json!({"ok": true}));
        Ok(())
    }
}

struct Slow {
    events: Sender<&'static str>,
}
impl RequestHandler for Slow {
    fn get(&self, cx: &Ctx) -> HandlerResult {
        let later = cx.clone();
        IOLoop::current().call_later(Duration::from_secs(1), move || {
            later.write("slow");
            later.finish();
        });
        let _ = self.events.send("slow-pending");
        Ok(())
    }
}

struct Dropped {
    flush: bool,
}
impl RequestHandler for Dropped {
    fn get(&self, cx: &Ctx) -> HandlerResult {
        if self.flush {
            cx.write("partial");
            cx.flush();
        }
        // Keep the response open past the handler's return, then forget it.
        let kept = cx.clone();
        IOLoop::current().add_callback(move || drop(kept));
        Ok(())
    }
}

struct Pending {
    events: Sender<&'static str>,
    /// Requests waiting for an answer that never comes (a long-poll's
    /// waiter list); a client that leaves is removed from it.
    waiting: Rc<RefCell<Vec<Ctx>>>,
}
impl RequestHandler for Pending {
    fn get(&self, cx: &Ctx) -> HandlerResult {
        self.waiting.borrow_mut().push(cx.clone());
        let waiting = Rc::clone(&self.waiting);
        let events = self.events.clone();
        cx.on_connection_close(move || {
            waiting.borrow_mut().clear();
            let _ = events.send("closed");
        });
        let _ = self.events.send("pending");
        Ok(())
    }
}

/// What a [`WithHandle`] route does with its response handle.
#[derive(Clone, Copy)]
enum HandleMode {
    /// Finish it from a timer, after the Ctx is gone.
    Finish,
    /// Drop it unfinished from a callback.
    Drop,
    /// Keep it until the client leaves.
    Park,
}

/// Parks its response with `Ctx::response_handle` (no Ctx clone).
struct WithHandle {
    events: Sender<&'static str>,
    mode: HandleMode,
    parked: Rc<RefCell<Vec<squall::web::ResponseHandle>>>,
}
impl RequestHandler for WithHandle {
    fn get(&self, cx: &Ctx) -> HandlerResult {
        let handle = cx.response_handle();
        match self.mode {
            HandleMode::Finish => {
                IOLoop::current().call_later(Duration::from_millis(20), move || {
                    handle.write("from a handle");
                    handle.finish();
                });
            }
            HandleMode::Drop => IOLoop::current().add_callback(move || drop(handle)),
            HandleMode::Park => {
                self.parked.borrow_mut().push(handle);
                let parked = Rc::clone(&self.parked);
                let events = self.events.clone();
                cx.on_connection_close(move || {
                    parked.borrow_mut().clear();
                    let _ = events.send("handle-closed");
                });
            }
        }
        let _ = self.events.send("handle-pending");
        Ok(())
    }
}

struct Stream;
impl RequestHandler for Stream {
    fn get(&self, cx: &Ctx) -> HandlerResult {
        cx.set_header("Content-Type", "text/plain");
        cx.write("a");
        cx.flush();
        let later = cx.clone();
        IOLoop::current().call_later(Duration::from_millis(5), move || {
            later.write("b");
            later.flush();
            later.write("c");
            later.finish();
        });
        Ok(())
    }
}

struct Render;
impl RequestHandler for Render {
    fn get(&self, cx: &Ctx) -> HandlerResult {
        cx.render(
            "escape.html",
            serde_json::json!({
                "msg": "<script>alert(\"x\")</script> & 'q'",
                "trusted": "<b>bold</b>",
            }),
        )
    }
}

/// `/big`: a compressible page over the gzip threshold; with an `X-Weak`
/// request header it sets its own weak ETag.
struct Big;
impl RequestHandler for Big {
    fn get(&self, cx: &Ctx) -> HandlerResult {
        if cx.request().headers().contains("X-Weak") {
            cx.set_header("Etag", "W/\"big-weak\"");
        }
        cx.set_header("Content-Type", "text/plain; charset=UTF-8");
        cx.write(big_text());
        Ok(())
    }
}

/// `/big-json`: the type comes from `write_json`, not from a header.
struct BigJson;
impl RequestHandler for BigJson {
    fn get(&self, cx: &Ctx) -> HandlerResult {
        cx.write_json(&serde_json::json!({ "text": big_text() }));
        Ok(())
    }
}

/// `/big-html`: no type set at all (Tornado's default applies).
struct BigHtml;
impl RequestHandler for BigHtml {
    fn get(&self, cx: &Ctx) -> HandlerResult {
        cx.write(big_text());
        Ok(())
    }
}

/// `/ctype?case=`: one way of setting `Content-Type` per case, so a test
/// can see what goes on the wire. `text/plain; charset=UTF-8` is one of the
/// types the web layer keeps without a header map; `text/x-custom` is not.
struct ContentTypeCases;
impl RequestHandler for ContentTypeCases {
    fn get(&self, cx: &Ctx) -> HandlerResult {
        let plain = "text/plain; charset=UTF-8";
        match cx.get_argument("case")?.as_str() {
            "set-known" => cx.set_header("content-type", plain),
            "custom-then-known" => {
                cx.set_header("Content-Type", "text/x-custom");
                cx.set_header("Content-Type", plain);
            }
            "known-then-custom" => {
                cx.set_header("Content-Type", plain);
                cx.set_header("Content-Type", "text/x-custom");
            }
            "known-then-add" => {
                cx.set_header("Content-Type", plain);
                cx.add_header("Content-Type", "text/x-custom");
            }
            "add-to-default" => cx.add_header("Content-Type", "text/x-custom"),
            "known-then-clear" => {
                cx.set_header("Content-Type", plain);
                cx.clear_header("Content-Type");
            }
            "json-then-known" => {
                cx.write_json(&serde_json::json!({"a": 1}));
                cx.set_header("Content-Type", plain);
            }
            other => return Err(squall::web::HTTPError::new(400, format!("no case {other}"))),
        }
        cx.write("body");
        Ok(())
    }
}

/// `/busy`: sets a header, then fails with a 503 whose answer carries its
/// own `Retry-After`. The error page keeps the error's header and drops the
/// one set before.
struct Busy;
impl RequestHandler for Busy {
    fn get(&self, cx: &Ctx) -> HandlerResult {
        cx.set_header("X-Half-Done", "yes");
        Err(squall::web::HTTPError::new(503, "busy, come back later")
            .with_header("Retry-After", "7"))
    }
}
