//! [`Message`]: one chat message, rendered and serialized once, shared by
//! every reader through an `Rc`.
//!
//! Mirrors the message dict of Tornado's `demos/chat/chatdemo.py`
//! (`{"id": uuid4, "from": ..., "body": ..., "html": render_string(
//! "message.html")}`, plus `time`). Tornado renders `message.html` inside
//! the request handler; here [`MessageTemplate`] holds its own template
//! environment, so a message can be made without any request — the
//! WebSocket chat posts messages from socket frames, not requests.

use std::cell::{OnceCell, RefCell};
use std::time::{SystemTime, UNIX_EPOCH};

use minijinja::{Environment, Value};

use crate::escape::{linkify, xhtml_escape};
use crate::web::AssetSource;
use crate::websocket::PreparedMessage;

/// One message. Immutable once made.
#[derive(Debug)]
pub struct Message {
    /// uuid4 string: the client's cursor and the DOM id `m<id>`.
    pub id: String,
    /// The author's user name.
    pub from: String,
    /// The text as sent (not escaped: escape it wherever you render it).
    pub body: String,
    /// When it was posted, seconds since the Unix epoch (Python's
    /// `time.time()`).
    pub time: f64,
    /// `templates/message.html` rendered for this message: escaped, safe to
    /// insert into a page as HTML.
    pub html: String,
    /// The message as the JSON object of the wire protocol,
    /// `{"id","from","body","html","time"}`, serialized once here so that
    /// no answer ever serializes it again.
    pub json: String,
    /// `json` as a WebSocket text frame, encoded the first time a socket
    /// needs it and then shared by every socket of the room
    /// ([`ws_frame`](Self::ws_frame)).
    pub(super) ws_frame: OnceCell<PreparedMessage>,
}

impl Message {
    /// A message with a fresh id and the current time.
    pub fn new(template: &MessageTemplate, from: &str, body: &str) -> Message {
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        Message::restore(template, uuid::Uuid::new_v4().to_string(), from, body, time)
    }

    /// A message with a known id and time (read back from the data file).
    pub fn restore(
        template: &MessageTemplate,
        id: String,
        from: &str,
        body: &str,
        time: f64,
    ) -> Message {
        let html = template.render(&id, from, body, time);
        let json = serde_json::json!({
            "id": id, "from": from, "body": body, "html": html, "time": time,
        })
        .to_string();
        Message {
            id,
            from: from.to_string(),
            body: body.to_string(),
            time,
            html,
            json,
            ws_frame: OnceCell::new(),
        }
    }

    /// The message as a WebSocket frame, encoded once per message however
    /// many sockets it goes to.
    pub fn ws_frame(&self) -> &PreparedMessage {
        self.ws_frame
            .get_or_init(|| PreparedMessage::text(&self.json))
    }
}

/// `templates/message.html` and the environment that renders it. Besides
/// Jinja's own filters it offers `linkify` (Tornado's `escape.linkify`:
/// escapes, then turns URLs into links).
pub struct MessageTemplate {
    /// Its own environment: rendering needs no request (see module docs).
    env: RefCell<Environment<'static>>,
    /// Re-read the file on every render.
    debug: bool,
}

impl MessageTemplate {
    /// The template `message.html` from `templates`.
    pub fn new(templates: AssetSource, debug: bool) -> MessageTemplate {
        let mut env = crate::web::template::environment(templates);
        env.add_filter("linkify", |text: String| {
            Value::from_safe_string(linkify(&text))
        });
        MessageTemplate {
            env: RefCell::new(env),
            debug,
        }
    }

    /// The HTML of one message. If the template is missing or broken, the
    /// error is logged and a plain escaped rendering is used instead: a
    /// message is never lost to a template typo.
    pub fn render(&self, id: &str, from: &str, body: &str, time: f64) -> String {
        let mut env = self.env.borrow_mut();
        if self.debug {
            env.clear_templates();
        }
        let (iso, clock) = utc_strings(time);
        let context = minijinja::context! {
            message => minijinja::context! { id, from, body, time, iso_time => iso, clock },
        };
        match env
            .get_template("message.html")
            .and_then(|t| t.render(context))
        {
            Ok(html) => html,
            Err(e) => {
                log::error!("templates/message.html: {e:#}");
                format!(
                    "<div class=\"message\" id=\"m{}\"><b>{}</b>: {}</div>",
                    xhtml_escape(id),
                    xhtml_escape(from),
                    linkify(body)
                )
            }
        }
    }
}

/// `("2026-11-22T07:24:26Z", "07:24")` for a Unix time: the `datetime`
/// attribute (the browser shows it in local time) and a UTC fallback.
fn utc_strings(time: f64) -> (String, String) {
    // Whole seconds; times before 1970 or absurdly far away clamp to 0.
    let secs = if time.is_finite() && time > 0.0 && time < 1e12 {
        time as i64
    } else {
        0
    };
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z"),
        format!("{h:02}:{m:02}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        assert_eq!(utc_strings(0.0).0, "1970-01-01T00:00:00Z");
        assert_eq!(
            utc_strings(1_700_000_000.5),
            ("2023-11-14T22:13:20Z".to_string(), "22:13".to_string())
        );
        assert_eq!(utc_strings(951_782_400.0).0, "2000-02-29T00:00:00Z");
        assert_eq!(utc_strings(f64::NAN).0, "1970-01-01T00:00:00Z");
    }

    /// Outside debug mode a template is read once, as in Tornado: an edit
    /// to the file shows only in debug mode (and costs no `stat` per render).
    #[test]
    fn template_is_cached_unless_debug() {
        let dir = std::env::temp_dir().join(format!("squall-msg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("message.html");
        std::fs::write(&file, "one {{ message.body }}").expect("write");
        let cached = MessageTemplate::new(AssetSource::Dir(dir.clone()), false);
        let debug = MessageTemplate::new(AssetSource::Dir(dir.clone()), true);
        assert_eq!(cached.render("i", "f", "x", 0.0), "one x");
        assert_eq!(debug.render("i", "f", "x", 0.0), "one x");
        std::fs::write(&file, "second {{ message.body }}").expect("rewrite");
        let (stale, fresh) = (
            cached.render("i", "f", "x", 0.0),
            debug.render("i", "f", "x", 0.0),
        );
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(stale, "one x");
        assert_eq!(fresh, "second x");
    }

    #[test]
    fn message_is_escaped_and_serialized_once() {
        // The copy built into the binary: the same bytes as templates/.
        let template =
            MessageTemplate::new(AssetSource::Bundled(crate::apps::assets::TEMPLATES), false);
        let m = Message::new(&template, "a<b", "<script>alert(1)</script> http://x.org");
        assert_eq!(m.id.len(), 36);
        assert!(m.html.contains(&format!("id=\"m{}\"", m.id)));
        assert!(!m.html.contains("<script>"));
        assert!(m.html.contains("&lt;script&gt;"));
        assert!(m.html.contains("a&lt;b"));
        assert!(m.html.contains("<a href=\"http://x.org\">"));
        let v: serde_json::Value = serde_json::from_str(&m.json).expect("json");
        assert_eq!(v["body"], "<script>alert(1)</script> http://x.org");
        assert_eq!(v["from"], "a<b");
        assert_eq!(v["html"], m.html.as_str());
    }
}
