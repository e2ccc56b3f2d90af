//! Escaping and unescaping for HTML, JSON embedded in HTML, and URLs, plus
//! `linkify` and `squeeze`. Mirrors Tornado's `escape.py`.
//!
//! Every function takes text and returns text; none can fail or panic, and
//! each runs in time linear in its input.

use std::borrow::Cow;

pub use crate::httputil::url::{url_escape, url_unescape};

/// Escapes `&`, `<`, `>`, `"` and `'` so that `s` can be placed in HTML
/// text or in a quoted attribute value. The quote becomes `&#x27;`, as
/// in Tornado since 6.4 (which wraps Python's `html.escape`).
///
/// Borrows the input when it contains none of them.
///
/// ```
/// use squall::escape::xhtml_escape;
/// assert_eq!(xhtml_escape("<a href='x'>&\"</a>"),
///            "&lt;a href=&#x27;x&#x27;&gt;&amp;&quot;&lt;/a&gt;");
/// ```
pub fn xhtml_escape(s: &str) -> Cow<'_, str> {
    let Some(first) = s.find(['&', '<', '>', '"', '\'']) else {
        return Cow::Borrowed(s);
    };
    let mut out = String::with_capacity(s.len() + s.len() / 8 + 8);
    out.push_str(&s[..first]);
    for c in s[first..].chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Serialises `value` as JSON that is safe inside an HTML `<script>`
/// element: every `</` becomes `<\/`, so a string can never close the
/// script (Tornado's `json_encode`). The result is still valid JSON.
///
/// ```
/// use squall::escape::json_encode_for_html;
/// let v = serde_json::json!({"body": "</script><script>alert(1)</script>"});
/// assert_eq!(json_encode_for_html(&v),
///            r#"{"body":"<\/script><script>alert(1)<\/script>"}"#);
/// ```
pub fn json_encode_for_html(value: &serde_json::Value) -> String {
    value.to_string().replace("</", "<\\/")
}

/// Collapses every run of whitespace and control characters
/// (`[\x00-\x20]+`) into one space and trims the ends (Tornado's `squeeze`).
///
/// ```
/// use squall::escape::squeeze;
/// assert_eq!(squeeze("  a \t\r\n b\x00c  "), "a b c");
/// ```
pub fn squeeze(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_run = false;
    for c in s.chars() {
        if c <= '\u{20}' {
            in_run = true;
        } else {
            if in_run && !out.is_empty() {
                out.push(' ');
            }
            in_run = false;
            out.push(c);
        }
    }
    // `out` never ends in the collapsed space; trim the Unicode
    // whitespace Python's `strip()` would also remove.
    out.trim().to_string()
}

/// HTML-escapes `text`, then turns URLs in it into links, like Tornado's
/// `linkify` with its defaults (`shorten=False`, no extra attributes,
/// `require_protocol=False`, `permitted_protocols=["http", "https"]`):
///
/// - `http://…` and `https://…` become `<a href="URL">URL</a>`;
/// - `www.…` without a scheme becomes `<a href="http://www.…">www.…</a>`;
/// - any other scheme (`javascript:`, `data:`, `ftp:`, or `HTTP:` in
///   another case) is left as plain, escaped text.
///
/// Where a URL ends follows Tornado's regular expression: it runs over
/// non-space characters except `&`, `(` and `)` (but including the
/// entities `&amp;` and `&quot;`, and balanced `(...)` groups) and then
/// gives back trailing punctuation, so `see http://x.com/a.` links
/// `http://x.com/a` and `(http://x.com)` links `http://x.com`.
///
/// ```
/// use squall::escape::linkify;
/// assert_eq!(
///     linkify("see http://example.com/?a=1&b=2. <b>"),
///     "see <a href=\"http://example.com/?a=1&amp;b=2\">http://example.com/?a=1&amp;b=2</a>. &lt;b&gt;"
/// );
/// assert_eq!(linkify("javascript://alert(1)"), "javascript://alert(1)");
/// ```
pub fn linkify(text: &str) -> String {
    let escaped = xhtml_escape(text);
    let s: &str = &escaped;
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    let mut pos = 0;
    // Starts inside a `[\w-]` run whose scheme attempt already failed fail
    // the same way (same run end, same text after it); skipping them keeps
    // the scan linear on inputs like "a-a-a-a-…".
    let mut no_scheme_before = 0;
    while let Some(c) = s[pos..].chars().next() {
        if at_word_boundary(s, pos) {
            if let Some(url) = match_url(s, pos, &mut no_scheme_before) {
                out.push_str(&s[copied..pos]);
                let text = &s[pos..url.end];
                match url.scheme {
                    Some("http" | "https") => push_link(&mut out, "", text, text),
                    Some(_) => out.push_str(text),
                    None => push_link(&mut out, "http://", text, text),
                }
                copied = url.end;
                pos = url.end;
                continue;
            }
        }
        pos += c.len_utf8();
    }
    out.push_str(&s[copied..]);
    out
}

fn push_link(out: &mut String, href_prefix: &str, href: &str, text: &str) {
    out.push_str("<a href=\"");
    out.push_str(href_prefix);
    out.push_str(href);
    out.push_str("\">");
    out.push_str(text);
    out.push_str("</a>");
}

/// A URL candidate found by [`match_url`]: it ends at byte `end`; `scheme`
/// is `None` for the `www.` form.
struct UrlMatch<'a> {
    end: usize,
    scheme: Option<&'a str>,
}

/// Python's `\w` (Unicode letters, digits and `_`).
fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Regex `\b` at byte `pos` of `s`.
fn at_word_boundary(s: &str, pos: usize) -> bool {
    let before = s[..pos].chars().next_back().is_some_and(is_word);
    let after = s[pos..].chars().next().is_some_and(is_word);
    before != after
}

/// Matches, at `pos`, Tornado's URL prefix:
///
/// ```text
/// prefix = ( [\w-]+ ":" /{1,3} ) / "www."
/// ```
///
/// followed by a URL body ([`match_body`]); the slash count backtracks
/// from three to one as the regex would.
fn match_url<'a>(s: &'a str, pos: usize, no_scheme_before: &mut usize) -> Option<UrlMatch<'a>> {
    if pos >= *no_scheme_before {
        let run = s[pos..]
            .find(|c: char| !(is_word(c) || c == '-'))
            .map_or(s.len(), |n| pos + n);
        if run > pos && s[run..].starts_with(':') {
            let after_colon = run + 1;
            let slashes = s[after_colon..]
                .bytes()
                .take(3)
                .take_while(|&b| b == b'/')
                .count();
            for n in (1..=slashes).rev() {
                if let Some(end) = match_body(s, after_colon + n) {
                    return Some(UrlMatch {
                        end,
                        scheme: Some(&s[pos..run]),
                    });
                }
            }
        }
        *no_scheme_before = run;
    }
    if s[pos..].starts_with("www.") {
        return match_body(s, pos + 4).map(|end| UrlMatch { end, scheme: None });
    }
    None
}

/// Matches Tornado's URL body at `pos` and returns where it ends:
///
/// ```text
/// body  = 1*( *unit end-char / "(" *unit ")" )
/// unit  = any char but whitespace, "&", "(", ")" / "&amp;" / "&quot;"
/// end-char = a unit that is one char and not whitespace or one of
///            ! " # $ % & ' ( ) * + , . : ; < = > ? @ [ \ ] ^ ` { | } ~
/// ```
///
/// Greedy, as the regex: each round takes the run of units up to its last
/// end-char, or else one parenthesised group.
fn match_body(s: &str, mut pos: usize) -> Option<usize> {
    let start = pos;
    loop {
        let (run_end, last_end_char) = scan_units(s, pos);
        if let Some(end) = last_end_char {
            pos = end;
            continue;
        }
        if run_end == pos && s[pos..].starts_with('(') {
            let (inner_end, _) = scan_units(s, pos + 1);
            if s[inner_end..].starts_with(')') {
                pos = inner_end + 1;
                continue;
            }
        }
        break;
    }
    (pos > start).then_some(pos)
}

/// Scans units from `pos`; returns where the run stops and the position
/// just after its last end-char, if it has one.
fn scan_units(s: &str, mut pos: usize) -> (usize, Option<usize>) {
    let mut last_end_char = None;
    while let Some(c) = s[pos..].chars().next() {
        if c == '&' {
            match ["&amp;", "&quot;"]
                .iter()
                .find(|e| s[pos..].starts_with(**e))
            {
                Some(entity) => pos += entity.len(),
                None => break,
            }
            continue;
        }
        if c.is_whitespace() || c == '(' || c == ')' {
            break;
        }
        pos += c.len_utf8();
        if !"!\"#$%&'()*+,.:;<=>?@[\\]^`{|}~".contains(c) {
            last_end_char = Some(pos);
        }
    }
    (pos, last_end_char)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xhtml_escape_all_five() {
        assert_eq!(xhtml_escape("&<>\"'"), "&amp;&lt;&gt;&quot;&#x27;");
        assert_eq!(xhtml_escape("caf\u{e9} & tea"), "caf\u{e9} &amp; tea");
        assert!(matches!(xhtml_escape("plain text"), Cow::Borrowed(_)));
        assert_eq!(xhtml_escape(""), "");
    }

    #[test]
    fn json_for_html() {
        let v = serde_json::json!(["</", "<\\/", "a</b"]);
        let encoded = json_encode_for_html(&v);
        assert!(!encoded.contains("</"));
        // Still JSON, and decodes to the same value.
        let back: serde_json::Value = serde_json::from_str(&encoded).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn squeeze_cases() {
        assert_eq!(squeeze(""), "");
        assert_eq!(squeeze(" \t\n "), "");
        assert_eq!(squeeze("a  b"), "a b");
        assert_eq!(squeeze("\x01a\x1fb\x7f"), "a b\x7f");
        assert_eq!(squeeze("caf\u{e9}\u{a0}"), "caf\u{e9}");
    }

    #[test]
    fn linkify_known_answers() {
        // Expected outputs checked against tornado.escape.linkify 6.6.1.
        let cases = [
            ("hello http://world.com/!", "hello <a href=\"http://world.com/\">http://world.com/</a>!"),
            ("hello http://world.com/with?param=true&stuff=yes",
             "hello <a href=\"http://world.com/with?param=true&amp;stuff=yes\">http://world.com/with?param=true&amp;stuff=yes</a>"),
            ("http://url.com/w(aaa)", "<a href=\"http://url.com/w(aaa)\">http://url.com/w(aaa)</a>"),
            ("http://url.com/w(aaa)bbb", "<a href=\"http://url.com/w(aaa)bbb\">http://url.com/w(aaa)bbb</a>"),
            ("(http://x.com)", "(<a href=\"http://x.com\">http://x.com</a>)"),
            ("www.example.com", "<a href=\"http://www.example.com\">www.example.com</a>"),
            ("https://example.com/a.", "<a href=\"https://example.com/a\">https://example.com/a</a>."),
            ("ftp://example.com", "ftp://example.com"),
            ("javascript://alert(1)", "javascript://alert(1)"),
            ("HTTP://EXAMPLE.COM", "HTTP://EXAMPLE.COM"),
            ("<http://x.com/>", "&lt;<a href=\"http://x.com/\">http://x.com/</a>&gt;"),
            ("\"http://x.com/\"", "&quot;<a href=\"http://x.com/\">http://x.com/</a>&quot;"),
            ("http:///", "<a href=\"http:///\">http:///</a>"),
            ("http:////", "<a href=\"http:////\">http:////</a>"),
            ("http://", "<a href=\"http://\">http://</a>"),
            ("http://x.com/a.(b)", "<a href=\"http://x.com/a\">http://x.com/a</a>.(b)"),
            ("http://x.com/(a(b)c)", "<a href=\"http://x.com/\">http://x.com/</a>(a(b)c)"),
            ("http://x.com/'q'", "<a href=\"http://x.com/\">http://x.com/</a>&#x27;q&#x27;"),
            ("www.", "www."),
            ("wwww.x", "wwww.x"),
            ("-http://x.com", "-<a href=\"http://x.com\">http://x.com</a>"),
            ("a-http://x.com", "a-http://x.com"),
            ("foo_http://x.com", "foo_http://x.com"),
            ("xhttp://a.com", "xhttp://a.com"),
            ("a:http://b.com", "a:<a href=\"http://b.com\">http://b.com</a>"),
            ("no links here.", "no links here."),
            ("http://\u{e9}.com/caf\u{e9}", "<a href=\"http://\u{e9}.com/caf\u{e9}\">http://\u{e9}.com/caf\u{e9}</a>"),
        ];
        for (input, want) in cases {
            assert_eq!(linkify(input), want, "{input:?}");
        }
    }

    #[test]
    fn linkify_is_linear_on_hostile_input() {
        let hostile = "a-".repeat(100_000) + "a:/" + &".".repeat(100_000);
        assert_eq!(linkify(&hostile), hostile);
        let parens = "http://x.com/".to_string() + &"(".repeat(100_000);
        assert!(linkify(&parens).starts_with("<a href=\"http://x.com/\">"));
    }
}
