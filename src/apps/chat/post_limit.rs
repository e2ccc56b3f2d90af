//! How often one user may post: a token bucket per user name.
//!
//! Tornado's `demos/chat` has no such limit: it broadcasts whatever
//! arrives. But every post costs the loop one fan-out to every waiter and
//! subscriber of the room (≈ 80 ms of the one core at 10 000 of them, see
//! `docs/benchmarks.md`), so a single user posting as fast as a socket can
//! send frames would slow down every other client. A bucket holds up to
//! `burst` posts and refills at `per_second`; a post that finds it empty is
//! refused with the time until the next one is allowed (HTTP 429 with
//! `Retry-After`, or a WebSocket error object with code 429).
//!
//! Pure bookkeeping: the caller passes the time, so tests need no clock
//! (smoltcp's injected-clock style).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Posts per second one user may keep up by default.
pub const DEFAULT_POSTS_PER_SECOND: f64 = 5.0;
/// Posts one user may send at once by default (a full bucket).
pub const DEFAULT_POST_BURST: u32 = 20;
/// The bucket map is swept of full buckets (users who have not posted for
/// a while: they carry no information) when it reaches this size, then
/// again at twice what survived.
const FIRST_SWEEP_AT: usize = 1024;

/// A posting rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PostRate {
    /// Sustained posts per second; 0 (or less) = no limit.
    pub per_second: f64,
    /// Posts allowed back to back after a quiet spell (at least 1).
    pub burst: u32,
}

impl Default for PostRate {
    fn default() -> PostRate {
        PostRate {
            per_second: DEFAULT_POSTS_PER_SECOND,
            burst: DEFAULT_POST_BURST,
        }
    }
}

impl PostRate {
    /// No limit at all.
    pub const UNLIMITED: PostRate = PostRate {
        per_second: 0.0,
        burst: 1,
    };

    fn is_unlimited(&self) -> bool {
        // NaN, too, means "no limit", never "nothing allowed".
        self.per_second.is_nan() || self.per_second <= 0.0
    }
}

/// One user's bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Posts available at `at` (fractional while refilling).
    tokens: f64,
    /// When `tokens` was last brought up to date.
    at: Instant,
}

/// The buckets of every user who posted recently.
#[derive(Debug)]
pub struct PostLimiter {
    /// The rate every user gets.
    rate: PostRate,
    /// By user name. Bounded by the number of accounts, and swept of full
    /// buckets as it grows (see [`FIRST_SWEEP_AT`]).
    buckets: HashMap<String, Bucket>,
    /// Sweep when `buckets` reaches this size.
    sweep_at: usize,
}

impl PostLimiter {
    /// A limiter giving every user `rate`.
    pub fn new(rate: PostRate) -> PostLimiter {
        PostLimiter {
            rate: PostRate {
                burst: rate.burst.max(1),
                ..rate
            },
            buckets: HashMap::new(),
            sweep_at: FIRST_SWEEP_AT,
        }
    }

    /// Spend one post of `user`'s at `now`: `Ok`, or `Err(wait)`, the time
    /// until the next post will be allowed. A refused post costs nothing.
    pub fn take(&mut self, user: &str, now: Instant) -> Result<(), Duration> {
        if self.rate.is_unlimited() {
            return Ok(());
        }
        let rate = self.rate;
        let burst = f64::from(rate.burst);
        if !self.buckets.contains_key(user) {
            if self.buckets.len() >= self.sweep_at {
                self.sweep(now);
            }
            self.buckets.insert(
                user.to_owned(),
                Bucket {
                    tokens: burst,
                    at: now,
                },
            );
        }
        let Some(bucket) = self.buckets.get_mut(user) else {
            return Ok(()); // inserted just above
        };
        bucket.tokens = refilled(bucket, rate, now);
        bucket.at = bucket.at.max(now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            // A tiny rate (say 1e-300 per second) makes a wait no
            // `Duration` holds; `from_secs_f64` would panic on it.
            let wait = (1.0 - bucket.tokens) / rate.per_second;
            Err(Duration::try_from_secs_f64(wait).unwrap_or(Duration::MAX))
        }
    }

    /// The rate every user gets.
    pub fn rate(&self) -> PostRate {
        self.rate
    }

    /// Users with a bucket now (who posted recently).
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }

    /// Forget every bucket that has refilled: such a user is treated
    /// exactly as one never seen.
    fn sweep(&mut self, now: Instant) {
        let rate = self.rate;
        let burst = f64::from(rate.burst);
        self.buckets.retain(|_, b| refilled(b, rate, now) < burst);
        self.sweep_at = (self.buckets.len() * 2).max(FIRST_SWEEP_AT);
    }
}

/// `bucket`'s tokens at `now` (a `now` before its time adds nothing).
fn refilled(bucket: &Bucket, rate: PostRate, now: Instant) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
    (bucket.tokens + elapsed * rate.per_second).min(f64::from(rate.burst))
}

/// `wait` in whole seconds, rounded up, as HTTP's `Retry-After` wants it
/// (a client told `0` would retry at once and be refused again).
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs()
        .saturating_add(u64::from(wait.subsec_nanos() > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(per_second: f64, burst: u32) -> PostRate {
        PostRate { per_second, burst }
    }

    #[test]
    fn a_burst_passes_then_the_next_post_waits_for_a_token() {
        let t0 = Instant::now();
        let mut limiter = PostLimiter::new(rate(2.0, 3));
        for _ in 0..3 {
            assert_eq!(limiter.take("ann", t0), Ok(()));
        }
        assert_eq!(limiter.take("ann", t0), Err(Duration::from_millis(500)));
        // Refused posts cost nothing: half a second later one is allowed.
        assert_eq!(limiter.take("ann", t0), Err(Duration::from_millis(500)));
        let later = t0 + Duration::from_millis(500);
        assert_eq!(limiter.take("ann", later), Ok(()));
        assert!(limiter.take("ann", later).is_err());
    }

    #[test]
    fn users_have_their_own_buckets() {
        let t0 = Instant::now();
        let mut limiter = PostLimiter::new(rate(1.0, 1));
        assert_eq!(limiter.take("ann", t0), Ok(()));
        assert!(limiter.take("ann", t0).is_err());
        assert_eq!(limiter.take("bob", t0), Ok(()));
    }

    #[test]
    fn a_quiet_spell_refills_up_to_the_burst_only() {
        let t0 = Instant::now();
        let mut limiter = PostLimiter::new(rate(10.0, 2));
        let much_later = t0 + Duration::from_secs(3600);
        assert_eq!(limiter.take("ann", t0), Ok(()));
        assert_eq!(limiter.take("ann", much_later), Ok(()));
        assert_eq!(limiter.take("ann", much_later), Ok(()));
        assert!(limiter.take("ann", much_later).is_err());
    }

    #[test]
    fn time_going_backwards_adds_nothing() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut limiter = PostLimiter::new(rate(1.0, 1));
        assert_eq!(limiter.take("ann", t0), Ok(()));
        let earlier = t0 - Duration::from_secs(5);
        assert_eq!(limiter.take("ann", earlier), Err(Duration::from_secs(1)));
    }

    #[test]
    fn a_rate_too_small_for_a_duration_waits_forever_without_panicking() {
        let t0 = Instant::now();
        let mut limiter = PostLimiter::new(rate(1e-300, 1));
        assert_eq!(limiter.take("ann", t0), Ok(()));
        assert_eq!(limiter.take("ann", t0), Err(Duration::MAX));
        assert_eq!(retry_after_secs(Duration::MAX), u64::MAX);
    }

    #[test]
    fn zero_or_nan_means_unlimited_and_tracks_nobody() {
        let t0 = Instant::now();
        for r in [PostRate::UNLIMITED, rate(f64::NAN, 5), rate(-1.0, 5)] {
            let mut limiter = PostLimiter::new(r);
            for _ in 0..1000 {
                assert_eq!(limiter.take("ann", t0), Ok(()));
            }
            assert_eq!(limiter.tracked(), 0);
        }
    }

    #[test]
    fn a_burst_of_zero_still_allows_one_post() {
        let t0 = Instant::now();
        let mut limiter = PostLimiter::new(rate(1.0, 0));
        assert_eq!(limiter.take("ann", t0), Ok(()));
        assert!(limiter.take("ann", t0).is_err());
    }

    #[test]
    fn full_buckets_are_swept_as_the_map_grows() {
        let t0 = Instant::now();
        let mut limiter = PostLimiter::new(rate(1.0, 2));
        for i in 0..FIRST_SWEEP_AT - 1 {
            assert_eq!(limiter.take(&format!("u{i}"), t0), Ok(()));
        }
        // "busy" empties its bucket; the others refill within a second.
        assert_eq!(limiter.take("busy", t0), Ok(()));
        assert_eq!(limiter.take("busy", t0), Ok(()));
        assert_eq!(limiter.tracked(), FIRST_SWEEP_AT);
        let later = t0 + Duration::from_millis(1500);
        assert_eq!(limiter.take("newcomer", later), Ok(()));
        // Swept: everyone whose bucket was full again; "busy" (1.5 of 2
        // tokens) stays, and keeps its state.
        assert_eq!(limiter.tracked(), 2);
        assert_eq!(limiter.take("busy", later), Ok(()));
        assert!(limiter.take("busy", later).is_err());
    }
}
