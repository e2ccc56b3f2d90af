//! A tiny `--flag value` parser (no dependency) and the target URL.
//!
//! Every scenario declares the flags it accepts; an unknown flag is an error,
//! so a typo never silently runs with a default.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};

pub struct Args {
    map: HashMap<String, String>,
}

impl Args {
    /// Parse `--key value` and `--key=value` pairs; `allowed` lists the keys (without `--`).
    pub fn parse(argv: &[String], allowed: &[&str]) -> Result<Args, String> {
        let mut map = HashMap::new();
        let mut i = 0;
        while i < argv.len() {
            let a = &argv[i];
            let Some(k) = a.strip_prefix("--") else {
                return Err(format!("unexpected argument {a:?}"));
            };
            let (key, val) = match k.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => {
                    i += 1;
                    let v = argv
                        .get(i)
                        .ok_or_else(|| format!("--{k} needs a value"))?
                        .clone();
                    (k.to_string(), v)
                }
            };
            if !allowed.contains(&key.as_str()) {
                return Err(format!(
                    "unknown flag --{key} (allowed: --{})",
                    allowed.join(", --")
                ));
            }
            map.insert(key, val);
            i += 1;
        }
        Ok(Args { map })
    }

    pub fn str(&self, k: &str, default: &str) -> String {
        self.map
            .get(k)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    }

    pub fn opt(&self, k: &str) -> Option<String> {
        self.map.get(k).cloned()
    }

    pub fn num<T: std::str::FromStr>(&self, k: &str, default: T) -> Result<T, String> {
        match self.map.get(k) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("--{k}: bad number {v:?}")),
        }
    }

    pub fn opt_num<T: std::str::FromStr>(&self, k: &str) -> Result<Option<T>, String> {
        match self.map.get(k) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| format!("--{k}: bad number {v:?}")),
        }
    }
}

/// A parsed `http://host:port/path` target on the loopback interface.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    /// `host:port` as written, for the `Host` header.
    pub host: String,
    /// Path and query (at least `/`).
    pub path: String,
}

impl Target {
    /// Only `http://` and only loopback addresses: this tool never sends
    /// traffic anywhere but this machine.
    pub fn parse(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url}: only http:// URLs"))?;
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let with_port = if host.contains(':') {
            host.to_string()
        } else {
            format!("{host}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("{url}: {e}"))?
            .find(|a| a.is_ipv4())
            .ok_or_else(|| format!("{url}: no IPv4 address"))?;
        if !addr.ip().is_loopback() {
            return Err(format!("{url}: refusing a non-loopback target"));
        }
        Ok(Target {
            addr,
            host: host.to_string(),
            path: path.to_string(),
        })
    }
}
