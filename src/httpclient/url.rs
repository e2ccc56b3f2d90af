//! Plain `http://` URLs: parsing, and resolving a redirect's `Location`
//! against the URL that sent it.
//!
//! Tornado uses `urllib.parse.urlsplit` / `urljoin`; this is the small part
//! of RFC 3986 a plain-HTTP client needs. `https://` is refused with
//! "https is not supported" (there is no TLS in squall), userinfo
//! (`user:pass@`) is refused (set an `Authorization` header instead), and
//! the fragment is dropped (it never goes on the wire).

/// A parsed `http://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// Host, lower-cased; an IPv6 literal without its brackets.
    pub host: String,
    /// Port (80 if not given).
    pub port: u16,
    /// The request-target: path (at least `/`) and `?query` if any.
    pub target: String,
}

impl Url {
    /// Parse `url`. Errors are messages for [`HTTPClientError::InvalidUrl`](super::HTTPClientError::InvalidUrl).
    pub fn parse(url: &str) -> Result<Url, String> {
        let Some(colon) = url.find(':') else {
            return Err(format!("{url:?} has no scheme"));
        };
        let scheme = &url[..colon];
        if scheme.eq_ignore_ascii_case("https") {
            return Err("https is not supported (squall's client speaks plain HTTP only)".into());
        }
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(format!("unsupported scheme {scheme:?}"));
        }
        let Some(rest) = url[colon + 1..].strip_prefix("//") else {
            return Err(format!("{url:?} has no //host"));
        };
        if let Some(bad) = rest.bytes().find(|b| b.is_ascii_control() || *b == b' ') {
            return Err(format!(
                "URL contains a space or control character (0x{bad:02x})"
            ));
        }
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let (host, port) = parse_authority(authority)?;
        let tail = tail.split('#').next().unwrap_or("");
        let target = if tail.starts_with('/') {
            escape_non_ascii(tail)
        } else {
            format!("/{}", escape_non_ascii(tail))
        };
        Ok(Url { host, port, target })
    }

    /// The `Host` header value: the host (bracketed if IPv6) and the port
    /// unless it is 80.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// Same origin (scheme, host, port; the scheme is always `http`).
    pub fn same_origin(&self, other: &Url) -> bool {
        self.host == other.host && self.port == other.port
    }

    /// The URL as text.
    pub fn to_url_string(&self) -> String {
        format!("http://{}{}", self.host_header(), self.target)
    }

    /// Resolve a `Location` header against this URL (RFC 3986 §5.2).
    pub fn join(&self, location: &str) -> Result<Url, String> {
        let location = location.trim();
        if has_scheme(location) {
            return Url::parse(location);
        }
        if location.starts_with("//") {
            return Url::parse(&format!("http:{location}"));
        }
        let location = location.split('#').next().unwrap_or("");
        if location.is_empty() {
            return Ok(self.clone());
        }
        let base_path = self.target.split('?').next().unwrap_or("/");
        let joined = if location.starts_with('/') {
            location.to_string()
        } else if location.starts_with('?') {
            format!("{base_path}{location}")
        } else {
            let dir = match base_path.rfind('/') {
                Some(i) => &base_path[..=i],
                None => "/",
            };
            format!("{dir}{location}")
        };
        let (path, query) = match joined.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (joined, None),
        };
        let mut target = remove_dot_segments(&path);
        if let Some(q) = query {
            target.push('?');
            target.push_str(&q);
        }
        Url::parse(&format!("http://{}{}", self.host_header(), target))
    }
}

/// `scheme ":"` at the start (RFC 3986 §3.1: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )).
fn has_scheme(s: &str) -> bool {
    let Some(colon) = s.find(':') else {
        return false;
    };
    let scheme = &s[..colon];
    let mut bytes = scheme.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// `host[:port]` or `[v6][:port]`.
fn parse_authority(authority: &str) -> Result<(String, u16), String> {
    if authority.contains('@') {
        return Err(
            "credentials in the URL are not supported; send an Authorization header".into(),
        );
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return Err("unterminated IPv6 literal".into());
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("invalid IPv6 literal {v6:?}"));
        }
        let port = match after {
            "" => None,
            p => match p.strip_prefix(':') {
                Some(p) => Some(p),
                None => return Err("garbage after the IPv6 literal".into()),
            },
        };
        (v6.to_ascii_lowercase(), port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h.to_ascii_lowercase(), Some(p)),
            None => (authority.to_ascii_lowercase(), None),
        }
    };
    if host.is_empty() {
        return Err("empty host".into());
    }
    if !host.contains(':')
        && !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        return Err(format!("invalid host {host:?}"));
    }
    let port = match port {
        None | Some("") => 80,
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) && p.len() <= 5 => match p.parse() {
            Ok(0) | Err(_) => return Err(format!("invalid port {p:?}")),
            Ok(n) => n,
        },
        Some(p) => return Err(format!("invalid port {p:?}")),
    };
    Ok((host, port))
}

/// Percent-encode bytes ≥ 0x80 (UTF-8 in a path or query) so the
/// request line stays ASCII.
fn escape_non_ascii(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii() {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// RFC 3986 §5.2.4, on whole segments.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                if out.len() > 1 {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let joined = out.join("/");
    if joined.starts_with('/') {
        joined
    } else {
        format!("/{joined}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("valid URL")
    }

    #[test]
    fn parses_plain_http() {
        let u = url("http://Example.COM:8080/a/b?x=1#frag");
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("example.com", 8080, "/a/b?x=1")
        );
        assert_eq!(u.host_header(), "example.com:8080");
        let u = url("http://127.0.0.1");
        assert_eq!((u.port, u.target.as_str()), (80, "/"));
        assert_eq!(u.host_header(), "127.0.0.1");
        let u = url("http://h?q=1");
        assert_eq!(u.target, "/?q=1");
        let u = url("http://[::1]:9/x");
        assert_eq!((u.host.as_str(), u.port), ("::1", 9));
        assert_eq!(u.host_header(), "[::1]:9");
        assert_eq!(url("http://h/é").target, "/%C3%A9");
    }

    #[test]
    fn refuses_what_it_cannot_fetch() {
        let https = Url::parse("https://example.com/").expect_err("https refused");
        assert!(https.contains("https is not supported"), "{https}");
        for bad in [
            "ftp://h/",
            "example.com/",
            "http:/h",
            "http://",
            "http://u:p@h/",
            "http://h:0/",
            "http://h:65536/",
            "http://h:x/",
            "http://h/a b",
            "http://h/a\r\nX: y",
            "http://[::1/",
            "http://[zz]/",
            "http://h$/",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn joins_locations() {
        let base = url("http://h:81/a/b/c?q=1");
        let j = |l: &str| base.join(l).expect("joins").to_url_string();
        assert_eq!(j("http://other/x"), "http://other/x");
        assert_eq!(j("//other:9/x"), "http://other:9/x");
        assert_eq!(j("/x?y"), "http://h:81/x?y");
        assert_eq!(j("d"), "http://h:81/a/b/d");
        assert_eq!(j("../d"), "http://h:81/a/d");
        assert_eq!(j("../../../../d"), "http://h:81/d");
        assert_eq!(j("./"), "http://h:81/a/b/");
        assert_eq!(j("?z=2"), "http://h:81/a/b/c?z=2");
        assert_eq!(j("#f"), "http://h:81/a/b/c?q=1");
        assert!(base.join("https://h/").is_err());
    }

    #[test]
    fn origins() {
        assert!(url("http://h/a").same_origin(&url("http://H:80/b")));
        assert!(!url("http://h/a").same_origin(&url("http://h:81/a")));
        assert!(!url("http://h/a").same_origin(&url("http://g/a")));
    }
}
