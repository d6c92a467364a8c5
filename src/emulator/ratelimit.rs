//! The rate limit: one token bucket per user, on tokio's clock (so it is deterministic under a
//! paused clock), and the `X-RateLimit-*` values every response carries.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// A token bucket: `per_second` tokens are added each second, up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained requests per second; also the `X-RateLimit-Limit` header.
    pub per_second: u32,
    /// How many requests may arrive at once after an idle period (the bucket size).
    pub burst: u32,
}

impl RateLimit {
    /// The documented limit of the real service: 30 requests per second per user.
    pub const DOCUMENTED: RateLimit = RateLimit {
        per_second: 30,
        burst: 30,
    };
}

/// What the limiter says about one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Verdict {
    pub allowed: bool,
    /// `X-RateLimit-Limit`.
    pub limit: u64,
    /// `X-RateLimit-Remaining`: whole requests left in the bucket after this one.
    pub remaining: u64,
    /// `X-RateLimit-Reset`: time until the bucket is full again.
    pub reset: Duration,
}

impl Verdict {
    /// The reset as the service spells it: seconds with three decimals, e.g. `0.101`.
    pub(crate) fn reset_header(&self) -> String {
        format!("{:.3}", self.reset.as_secs_f64())
    }
}

/// What an unlimited emulator reports, so that clients pacing from headers never wait.
const UNLIMITED: u64 = 1_000_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug)]
pub(crate) struct Limiter {
    limit: Option<RateLimit>,
    buckets: HashMap<String, Bucket>,
}

impl Limiter {
    pub(crate) fn new(limit: Option<RateLimit>) -> Self {
        Limiter {
            limit,
            buckets: HashMap::new(),
        }
    }

    /// Takes one request from `user`'s bucket at `now`, if there is one to take.
    pub(crate) fn check(&mut self, user: &str, now: Instant) -> Verdict {
        let Some(limit) = self.limit else {
            return Verdict {
                allowed: true,
                limit: UNLIMITED,
                remaining: UNLIMITED,
                reset: Duration::ZERO,
            };
        };
        let rate = f64::from(limit.per_second.max(1));
        let burst = f64::from(limit.burst.max(1));
        let bucket = self.buckets.entry(user.to_owned()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.at = now;
        let allowed = bucket.tokens >= 1.0;
        if allowed {
            bucket.tokens -= 1.0;
        }
        Verdict {
            allowed,
            limit: u64::from(limit.per_second),
            remaining: bucket.tokens.floor() as u64,
            reset: Duration::from_secs_f64((burst - bucket.tokens) / rate),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_allowed_then_refused_until_tokens_refill() {
        let mut l = Limiter::new(Some(RateLimit {
            per_second: 10,
            burst: 3,
        }));
        let start = Instant::now();
        let remaining: Vec<_> = (0..3).map(|_| l.check("u", start).remaining).collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = l.check("u", start);
        assert!(!refused.allowed);
        assert_eq!(refused.reset_header(), "0.300");

        tokio::time::advance(Duration::from_millis(100)).await;
        let v = l.check("u", Instant::now());
        assert!(v.allowed, "one token refills in 1/10 s");
        assert_eq!(v.remaining, 0);
        assert!(!l.check("u", Instant::now()).allowed);
    }

    #[tokio::test(start_paused = true)]
    async fn buckets_are_per_user_and_never_overfill() {
        let mut l = Limiter::new(Some(RateLimit {
            per_second: 1,
            burst: 1,
        }));
        assert!(l.check("a", Instant::now()).allowed);
        assert!(!l.check("a", Instant::now()).allowed);
        assert!(l.check("b", Instant::now()).allowed);

        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(l.check("a", Instant::now()).allowed);
        assert!(
            !l.check("a", Instant::now()).allowed,
            "the bucket holds at most `burst`"
        );
    }

    #[test]
    fn reset_is_decimal_seconds_and_limit_is_the_rate() {
        let mut l = Limiter::new(Some(RateLimit::DOCUMENTED));
        let v = l.check("u", Instant::now());
        assert_eq!((v.limit, v.remaining), (30, 29));
        assert_eq!(v.reset_header(), "0.033");
    }

    #[test]
    fn unlimited_always_allows() {
        let mut l = Limiter::new(None);
        for _ in 0..1000 {
            assert!(l.check("u", Instant::now()).allowed);
        }
    }
}
