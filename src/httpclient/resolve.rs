//! Host name → addresses, without ever blocking the loop.
//!
//! Mirrors Tornado's `tornado/netutil.py` resolvers: `DefaultExecutorResolver`
//! runs the blocking `getaddrinfo` on a thread pool and hands the result
//! back to the loop. Here:
//!
//! * an IP literal needs no lookup;
//! * `localhost` is answered from a fixed list (`127.0.0.1`, then `::1`),
//!   which is what every resolver says for it (RFC 6761 §6.3);
//! * any other name goes to [`IOLoop::run_in_executor`]: the system
//!   resolver blocks a worker thread, not the loop.
//!
//! The answer always arrives through the loop (never inside the caller), so
//! callers see one code path whatever the host.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

use super::request::HTTPClientError;
use crate::ioloop::IOLoop;

/// What a lookup gives: the addresses to try, in order.
pub type Resolved = Result<Vec<SocketAddr>, HTTPClientError>;

/// Most addresses kept from one lookup (a name with hundreds of records
/// must not make one fetch try them all).
const MAX_ADDRESSES: usize = 8;

/// Resolve `host` (an IPv6 literal without brackets is fine) and call
/// `callback` on the loop with the addresses for `port`.
pub fn resolve(host: &str, port: u16, callback: impl FnOnce(Resolved) + 'static) {
    let ioloop = IOLoop::current();
    if let Some(addrs) = resolve_inline(host, port) {
        ioloop.add_callback(move || callback(Ok(addrs)));
        return;
    }
    let name = host.to_string();
    ioloop.run_in_executor(
        move || -> Result<Vec<SocketAddr>, String> {
            (name.as_str(), port)
                .to_socket_addrs()
                .map(|it| it.take(MAX_ADDRESSES).collect())
                .map_err(|e| e.to_string())
        },
        {
            let host = host.to_string();
            move |result: Result<Vec<SocketAddr>, String>| {
                callback(match result {
                    Ok(addrs) if !addrs.is_empty() => Ok(addrs),
                    Ok(_) => Err(HTTPClientError::Resolve {
                        host,
                        message: "no addresses".into(),
                    }),
                    Err(message) => Err(HTTPClientError::Resolve { host, message }),
                })
            }
        },
    );
}

/// The answer for names that need no resolver: IP literals and localhost.
pub fn resolve_inline(host: &str, port: u16) -> Option<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(vec![SocketAddr::new(ip, port)]);
    }
    if host.eq_ignore_ascii_case("localhost") || host.eq_ignore_ascii_case("localhost.") {
        return Some(vec![
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port),
        ]);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_names() {
        assert_eq!(
            resolve_inline("127.0.0.1", 80),
            Some(vec!["127.0.0.1:80".parse().expect("addr")])
        );
        assert_eq!(
            resolve_inline("::1", 8),
            Some(vec!["[::1]:8".parse().expect("addr")])
        );
        assert_eq!(resolve_inline("LocalHost", 1).map(|v| v.len()), Some(2));
        assert_eq!(resolve_inline("example.com", 80), None);
    }
}
