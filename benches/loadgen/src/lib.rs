//! squall's benchmark tooling: a lean single-threaded mio load generator.
//!
//! The `loadgen` binary runs one scenario per invocation against a server
//! that speaks squall's public HTTP contract (see `docs/benchmarks.md` at the
//! repository root). Every scenario prints human-readable lines and ends with
//! exactly one JSON summary line, which `benches/compare.sh` collects.
//!
//! | module        | what it holds                                            |
//! |---------------|----------------------------------------------------------|
//! | [`cli`]       | `--flag value` parsing and the loopback-only target URL  |
//! | [`sys`]       | own CPU (getrusage), server CPU/RSS (/proc), fd limit    |
//! | [`stats`]     | latency histogram, exact percentiles, CPU accounting     |
//! | [`net`]       | the client's reactor: a pool of connections on mio       |
//! | [`http`]      | response parser, blocking setup client, login, /metrics  |
//! | [`ws`]        | the client side of RFC 6455 the benchmarks need          |
//! | [`scenarios`] | hello, longpoll-fanout, ws-fanout, idle, cart-race, connect-storm |
//!
//! Every network loop is bounded in time and count, and only loopback
//! addresses are accepted as targets.

pub mod cli;
pub mod http;
pub mod net;
pub mod scenarios;
pub mod stats;
pub mod sys;
pub mod ws;
