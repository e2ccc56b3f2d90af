//! Latency statistics and the run's own CPU accounting.
//!
//! Two collectors: [`Histogram`], a fixed-size log-linear histogram for the
//! millions of samples of `hello` (about 3 % precision, no allocation per
//! sample), and [`Samples`], exact sorted percentiles for fan-outs where
//! every client's latency is kept.

use serde_json::{json, Value};
use std::time::{Duration, Instant};

const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
const BUCKETS: usize = ((64 - SUB_BITS as usize) + 1) * SUB as usize;

/// Log-linear histogram of nanosecond values: exact below 64 ns, then 32
/// sub-buckets per power of two.
pub struct Histogram {
    counts: Vec<u64>,
    n: u64,
    max: u64,
    sum: u128,
}

fn bucket_of(v: u64) -> usize {
    if v < 2 * SUB {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros();
    let shift = msb - SUB_BITS;
    (shift as usize) * SUB as usize + (v >> shift) as usize
}

fn value_of(idx: usize) -> u64 {
    if idx < 2 * SUB as usize {
        return idx as u64;
    }
    let shift = (idx / SUB as usize - 1) as u32;
    let m = (idx % SUB as usize) as u64 + SUB;
    (m << shift) + ((1u64 << shift) >> 1)
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS],
            n: 0,
            max: 0,
            sum: 0,
        }
    }
    pub fn record(&mut self, d: Duration) {
        let v = d.as_nanos().min(u64::MAX as u128) as u64;
        self.counts[bucket_of(v).min(BUCKETS - 1)] += 1;
        self.n += 1;
        self.max = self.max.max(v);
        self.sum += v as u128;
    }
    pub fn count(&self) -> u64 {
        self.n
    }
    /// Value (ns) at quantile `q` in [0, 1].
    pub fn quantile(&self, q: f64) -> u64 {
        if self.n == 0 {
            return 0;
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return value_of(i).min(self.max);
            }
        }
        self.max
    }
    /// `{p50_ms, p90_ms, p99_ms, p999_ms, max_ms, mean_ms}`.
    pub fn summary(&self) -> Value {
        let ms = |ns: u64| round3(ns as f64 / 1e6);
        let mean = if self.n > 0 {
            (self.sum / self.n as u128) as u64
        } else {
            0
        };
        json!({
            "p50_ms": ms(self.quantile(0.50)),
            "p90_ms": ms(self.quantile(0.90)),
            "p99_ms": ms(self.quantile(0.99)),
            "p999_ms": ms(self.quantile(0.999)),
            "max_ms": ms(self.max),
            "mean_ms": ms(mean),
        })
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

/// Every sample kept; exact percentiles.
#[derive(Default, Clone)]
pub struct Samples(pub Vec<Duration>);

impl Samples {
    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Nearest-rank percentile in milliseconds.
    pub fn pct_ms(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        let mut v = self.0.clone();
        v.sort_unstable();
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        round3(v[rank - 1].as_secs_f64() * 1e3)
    }
    pub fn summary(&self) -> Value {
        json!({
            "p50_ms": self.pct_ms(0.50),
            "p99_ms": self.pct_ms(0.99),
            "max_ms": self.pct_ms(1.0),
        })
    }
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Wall clock and our own CPU between `start` and `stop`: the client-bound check.
pub struct ClientCpu {
    wall0: Instant,
    cpu0: Duration,
    machine0: Option<f64>,
}

impl ClientCpu {
    pub fn start() -> ClientCpu {
        ClientCpu {
            wall0: Instant::now(),
            cpu0: crate::sys::self_cpu(),
            machine0: crate::sys::machine_busy(),
        }
    }
    /// `{client_cpu_s, client_cpu_frac, client_bound}`; bound means > 90 % of one core.
    pub fn finish(&self) -> Value {
        let wall = self.wall0.elapsed().as_secs_f64().max(1e-9);
        let cpu = (crate::sys::self_cpu() - self.cpu0).as_secs_f64();
        let frac = cpu / wall;
        json!({
            "client_cpu_s": round3(cpu),
            "client_cpu_frac": round3(frac),
            "client_bound": frac > 0.9,
        })
    }

    /// [`ClientCpu::finish`] plus `other_cpu_frac`: the share of one core
    /// that processes other than this client and the server used meanwhile
    /// (another build on the machine shows up here). Needs the server's CPU
    /// over the same window.
    pub fn finish_with_server(&self, server_cpu_s: Option<f64>) -> Value {
        let mut v = self.finish();
        let wall = self.wall0.elapsed().as_secs_f64().max(1e-9);
        let cpu = (crate::sys::self_cpu() - self.cpu0).as_secs_f64();
        if let (Some(m0), Some(m1), Some(srv)) =
            (self.machine0, crate::sys::machine_busy(), server_cpu_s)
        {
            let other = ((m1 - m0) - cpu - srv).max(0.0) / wall;
            merge(&mut v, json!({ "other_cpu_frac": round3(other) }));
        }
        v
    }
}

/// Server CPU seconds between two snapshots, when a pid was given.
pub struct ServerCpu {
    pid: Option<u32>,
    t0: Option<f64>,
}

impl ServerCpu {
    pub fn start(pid: Option<u32>) -> ServerCpu {
        ServerCpu {
            pid,
            t0: pid.and_then(crate::sys::proc_cpu),
        }
    }
    pub fn elapsed(&self) -> Option<f64> {
        let now = crate::sys::proc_cpu(self.pid?)?;
        Some(round3(now - self.t0?))
    }
}

/// Merge the fields of `extra` (an object) into `base` (an object).
pub fn merge(base: &mut Value, extra: Value) {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        for (k, v) in e {
            b.insert(k, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotone_and_close() {
        let mut last = 0;
        for v in [
            0u64,
            1,
            63,
            64,
            65,
            100,
            1000,
            12345,
            1 << 20,
            987654321,
            u64::MAX / 2,
        ] {
            let b = bucket_of(v);
            assert!(b >= last);
            last = b;
            let back = value_of(b);
            let err = (back as f64 - v as f64).abs() / (v.max(1) as f64);
            assert!(err < 0.04, "v={v} back={back}");
        }
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::new();
        for i in 1..=1000u64 {
            h.record(Duration::from_micros(i));
        }
        let p50 = h.quantile(0.5) as f64 / 1e3;
        assert!((p50 - 500.0).abs() < 20.0, "{p50}");
        let mut s = Samples::default();
        for i in 1..=100u64 {
            s.push(Duration::from_millis(i));
        }
        assert_eq!(s.pct_ms(0.99), 99.0);
        assert_eq!(s.pct_ms(1.0), 100.0);
    }
}
