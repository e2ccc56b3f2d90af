//! One chat message, serialized once when it is posted, in the shape and
//! size of squall's: `{"body","from","html","id","time"}` with the same
//! `html` snippet, so the floor writes as many bytes per waiter as squall.

use crate::clock;
use serde_json::json;

/// A posted message: its id (the long-poll cursor) and its JSON object.
pub struct Message {
    /// Matched against long-poll cursors.
    pub id: String,
    /// The serialized object, shared by the POST answer, the history, every
    /// long-poll answer and every WebSocket frame.
    pub json: Vec<u8>,
}

/// Message ids: uuid-shaped (36 characters, like squall's uuid4) and unique
/// within the process.
pub struct Ids {
    /// Per-process start, so two runs do not reuse ids.
    seed: u64,
    /// How many ids were handed out.
    next: u64,
}

impl Ids {
    /// Seeded from the clock and the pid.
    pub fn new() -> Ids {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Ids {
            seed: mix(t ^ (u64::from(std::process::id()) << 32)),
            next: 0,
        }
    }

    /// The next id. `mix` is a bijection and the argument never repeats, so
    /// the first 64 bits alone make ids unique.
    pub fn next_id(&mut self) -> String {
        self.next += 1;
        let a = mix(self
            .seed
            .wrapping_add(self.next.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
        let b = mix(a ^ self.seed);
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }
}

/// splitmix64's finalizer (a bijection on u64).
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Escape `&<>"'` as squall's (and Tornado's) `xhtml_escape` does.
fn html_escape(s: &str, out: &mut String) {
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

impl Message {
    /// Build and serialize the message `body` from user `from`, now.
    pub fn new(id: String, from: &str, body: &str) -> Message {
        let time = clock::now_f64();
        let c = clock::civil(time as u64);
        let mut html = String::with_capacity(200 + from.len() + body.len());
        html.push_str("<div class=\"message\" id=\"m");
        html.push_str(&id);
        html.push_str("\"><div class=\"meta\"><span class=\"from\">");
        html_escape(from, &mut html);
        html.push_str("</span> <time datetime=\"");
        html.push_str(&clock::iso(&c));
        html.push_str(&format!(
            "\">{:02}:{:02}</time></div><div class=\"body\">",
            c.hour, c.minute
        ));
        html_escape(body, &mut html);
        html.push_str("</div></div>");
        // serde_json's map is ordered by key: body, from, html, id, time, as
        // squall writes them.
        let v = json!({"body": body, "from": from, "html": html, "id": id, "time": time});
        let json = serde_json::to_vec(&v).unwrap_or_default();
        Message { id, json }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_and_unique_ids() {
        let mut ids = Ids::new();
        let a = ids.next_id();
        let b = ids.next_id();
        assert_eq!(a.len(), 36);
        assert_ne!(a, b);
        let m = Message::new(a.clone(), "bob", "<hi>");
        let v: serde_json::Value = serde_json::from_slice(&m.json).unwrap();
        assert_eq!(v["id"], a.as_str());
        assert_eq!(v["body"], "<hi>");
        assert!(v["html"].as_str().unwrap().contains("&lt;hi&gt;"));
        assert!(std::str::from_utf8(&m.json)
            .unwrap()
            .starts_with("{\"body\":"));
    }
}
