//! The client-wide pacer: keeps the request rate at the service's rate limit, not below it,
//! from the `X-RateLimit-*` headers every response carries.
//!
//! The service limits each user with a token bucket that refills at `X-RateLimit-Limit`
//! requests per second (30 on HCP Terraform). The pacer keeps a local mirror of that bucket:
//!
//! * it refills at `limit` per second and each request takes one token; when none is left, the
//!   request waits until one has refilled, so a long run proceeds at exactly the limit;
//! * every response corrects the mirror from `X-RateLimit-Remaining`: never above what the
//!   service says remains (other clients of the same user consume the same bucket), never below
//!   that figure minus the requests still in flight (so a conservative guess does not slow us
//!   down for the rest of the run);
//! * a 429 stops every request until `X-RateLimit-Reset` has passed (the documented advice),
//!   then pacing resumes from an empty bucket.
//!
//! Until the first response arrives nothing is known and nothing waits: the first requests are
//! the initial burst that the bucket allows anyway. A response without the headers (a proxy,
//! another server) leaves the pacer as it was; a service that never sends them is not paced.
//!
//! Everything here is pure: time comes in as [`tokio::time::Instant`] arguments and delays go
//! out as [`Duration`]s, so the logic is tested on a paused clock. [`Pacer`] is wrapped in a
//! mutex by the client; no lock is held across an await.

use std::time::Duration;

use reqwest::header::HeaderMap;
use tokio::time::Instant;

/// The rate-limit figures of one response.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitHeaders {
    /// `X-RateLimit-Limit`: requests per second.
    pub limit: f64,
    /// `X-RateLimit-Remaining`: requests the bucket holds after this one.
    pub remaining: f64,
    /// `X-RateLimit-Reset`: seconds (decimal) until the bucket is full again; on a 429, the
    /// wait before retrying. Absent: `None`.
    pub reset: Option<Duration>,
}

impl RateLimitHeaders {
    /// Reads the headers; `None` unless both limit and remaining are present and sane.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let num = |name: &str| -> Option<f64> {
            let v: f64 = headers.get(name)?.to_str().ok()?.trim().parse().ok()?;
            (v.is_finite() && v >= 0.0).then_some(v)
        };
        let limit = num("x-ratelimit-limit")?;
        let remaining = num("x-ratelimit-remaining")?;
        if limit <= 0.0 {
            return None;
        }
        let reset = num("x-ratelimit-reset").map(|s| Duration::from_secs_f64(s.min(MAX_WAIT_SECS)));
        Some(RateLimitHeaders {
            limit,
            remaining,
            reset,
        })
    }
}

/// No header makes us wait longer than this at once: a wrong or hostile value must not stall a
/// run for hours. Longer limits are still honoured, in several waits.
const MAX_WAIT_SECS: f64 = 300.0;

/// The local mirror of the service's bucket. See the module documentation.
#[derive(Debug, Clone)]
pub struct Pacer {
    /// Refill rate in requests per second; `None` until a response told us.
    rate: Option<f64>,
    /// Largest bucket seen: the refill never goes above it.
    capacity: f64,
    /// Tokens in the mirror at `at`. Negative when requests are queued behind an empty bucket.
    level: f64,
    at: Instant,
    /// Requests that took a token and have not completed: the service may not have counted
    /// them yet when a response reports `remaining`.
    outstanding: u32,
    /// After a 429: nobody sends before this.
    blocked_until: Option<Instant>,
}

impl Pacer {
    pub fn new(now: Instant) -> Self {
        Pacer {
            rate: None,
            capacity: 0.0,
            level: 0.0,
            at: now,
            outstanding: 0,
            blocked_until: None,
        }
    }

    fn refill(&mut self, now: Instant) {
        if let Some(rate) = self.rate {
            let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
            self.level = (self.level + elapsed * rate).min(self.capacity);
        }
        self.at = self.at.max(now);
    }

    /// Takes a token for one request about to be sent at `now`, and says how long to wait
    /// before sending it. Every reservation must be followed by exactly one
    /// [`complete`](Self::complete) or [`cancel`](Self::cancel).
    pub fn reserve(&mut self, now: Instant) -> Duration {
        self.outstanding += 1;
        let mut wait = Duration::ZERO;
        if let Some(rate) = self.rate {
            self.refill(now);
            if self.level < 1.0 {
                wait = Duration::from_secs_f64(((1.0 - self.level) / rate).min(MAX_WAIT_SECS));
            }
            self.level -= 1.0;
        }
        if let Some(until) = self.blocked_until {
            wait = wait.max(until.saturating_duration_since(now));
        }
        wait
    }

    /// How long a request that already reserved must still wait at `now` because a 429 arrived
    /// while it slept.
    pub fn blocked_for(&self, now: Instant) -> Duration {
        self.blocked_until
            .map_or(Duration::ZERO, |until| until.saturating_duration_since(now))
    }

    /// A reserved request will not be sent after all (cancelled while waiting): its token is
    /// given back.
    pub fn cancel(&mut self, now: Instant) {
        self.outstanding = self.outstanding.saturating_sub(1);
        if self.rate.is_some() {
            self.refill(now);
            self.level = (self.level + 1.0).min(self.capacity);
        }
    }

    /// A reserved request completed at `now`: with a response (its rate-limit headers, if
    /// any, and whether it was a 429) or with a transport error (`None`, `false`).
    pub fn complete(
        &mut self,
        now: Instant,
        headers: Option<RateLimitHeaders>,
        rate_limited: bool,
    ) {
        self.outstanding = self.outstanding.saturating_sub(1);
        let Some(h) = headers else {
            if rate_limited {
                // A 429 without a reset: wait one second, the documented window.
                self.block(now, Duration::from_secs(1));
            }
            return;
        };
        let first = self.rate.is_none();
        self.rate = Some(h.limit);
        self.refill(now);
        self.capacity = self.capacity.max(h.limit).max(h.remaining);
        let others = f64::from(self.outstanding);
        if first {
            self.level = h.remaining - others;
        } else {
            // Never above what the service says remains; never below that minus what may not
            // have been counted yet.
            self.level = self.level.min(h.remaining).max(h.remaining - others);
        }
        if rate_limited {
            self.level = self.level.min(0.0);
            self.block(now, h.reset.unwrap_or(Duration::from_secs(1)));
        }
    }

    fn block(&mut self, now: Instant, wait: Duration) {
        let until = now + wait;
        self.blocked_until = Some(self.blocked_until.map_or(until, |b| b.max(until)));
    }

    /// The refill rate learned from the service, if any (for logs and benchmarks).
    pub fn rate(&self) -> Option<f64> {
        self.rate
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderName, HeaderValue};

    use super::*;

    fn headers(limit: &str, remaining: &str, reset: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("x-ratelimit-limit", limit),
            ("x-ratelimit-remaining", remaining),
            ("x-ratelimit-reset", reset),
        ] {
            h.insert(
                HeaderName::from_static(k),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn rl(limit: f64, remaining: f64, reset: f64) -> Option<RateLimitHeaders> {
        Some(RateLimitHeaders {
            limit,
            remaining,
            reset: Some(Duration::from_secs_f64(reset)),
        })
    }

    #[test]
    fn headers_parse_decimal_seconds_and_reject_nonsense() {
        let h = RateLimitHeaders::from_headers(&headers("30", "29", "0.101")).unwrap();
        assert_eq!(h.limit, 30.0);
        assert_eq!(h.remaining, 29.0);
        assert_eq!(h.reset, Some(Duration::from_millis(101)));
        assert!(RateLimitHeaders::from_headers(&headers("0", "0", "1")).is_none());
        assert!(RateLimitHeaders::from_headers(&headers("x", "1", "1")).is_none());
        assert!(RateLimitHeaders::from_headers(&headers("30", "-1", "1")).is_none());
        assert!(RateLimitHeaders::from_headers(&HeaderMap::new()).is_none());
        let huge = RateLimitHeaders::from_headers(&headers("30", "0", "1e12")).unwrap();
        assert_eq!(huge.reset, Some(Duration::from_secs(300)), "capped");
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_waits_before_the_service_has_said_anything() {
        let mut p = Pacer::new(Instant::now());
        for _ in 0..100 {
            assert_eq!(p.reserve(Instant::now()), Duration::ZERO);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_bucket_spaces_requests_at_the_limit() {
        let now = Instant::now();
        let mut p = Pacer::new(now);
        assert_eq!(p.reserve(now), Duration::ZERO);
        p.complete(now, rl(30.0, 0.0, 1.0), false);
        // Ten requests queued at once leave at 1/30 s intervals: the limit, not two thirds of it.
        let waits: Vec<u128> = (0..10).map(|_| p.reserve(now).as_micros()).collect();
        let expected: Vec<u128> = (1..=10).map(|i| i * 1_000_000 / 30).collect();
        for (w, e) in waits.iter().zip(&expected) {
            assert!(w.abs_diff(*e) <= 1, "{waits:?} vs {expected:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_bucket_is_spent_at_once_then_paced() {
        let now = Instant::now();
        let mut p = Pacer::new(now);
        p.reserve(now);
        p.complete(now, rl(30.0, 29.0, 0.033), false);
        let free = (0..40)
            .map(|_| p.reserve(now))
            .take_while(|w| w.is_zero())
            .count();
        assert_eq!(
            free, 29,
            "the 29 tokens the service reported are used without waiting"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn remaining_caps_the_mirror_when_someone_else_uses_the_bucket() {
        let now = Instant::now();
        let mut p = Pacer::new(now);
        p.reserve(now);
        p.complete(now, rl(30.0, 29.0, 0.033), false);
        // Another client of the same user drained the bucket: the next response says 2 left.
        p.reserve(now);
        p.complete(now, rl(30.0, 2.0, 0.9), false);
        assert_eq!(p.reserve(now), Duration::ZERO);
        assert_eq!(p.reserve(now), Duration::ZERO);
        assert!(
            p.reserve(now) > Duration::ZERO,
            "the third waits for a refill"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn in_flight_requests_are_not_counted_twice() {
        let now = Instant::now();
        let mut p = Pacer::new(now);
        p.reserve(now);
        p.complete(now, rl(30.0, 20.0, 0.3), false);
        // Eight requests leave; the first answer says 19 because the service had not counted
        // the other seven yet. The mirror keeps 20 - 8 = 12 rather than believing 19.
        for _ in 0..8 {
            assert_eq!(p.reserve(now), Duration::ZERO);
        }
        p.complete(now, rl(30.0, 19.0, 0.3), false);
        let free = (0..40)
            .map(|_| p.reserve(now))
            .take_while(|w| w.is_zero())
            .count();
        assert_eq!(free, 12);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_blocks_everyone_until_the_reset() {
        let now = Instant::now();
        let mut p = Pacer::new(now);
        p.reserve(now);
        p.complete(now, rl(30.0, 10.0, 0.5), false);
        p.reserve(now);
        p.complete(now, rl(30.0, 0.0, 0.8), true);
        assert_eq!(p.reserve(now), Duration::from_millis(800));
        assert_eq!(p.blocked_for(now), Duration::from_millis(800));
        tokio::time::advance(Duration::from_millis(800)).await;
        let later = Instant::now();
        assert_eq!(p.blocked_for(later), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_without_headers_waits_a_second() {
        let now = Instant::now();
        let mut p = Pacer::new(now);
        p.reserve(now);
        p.complete(now, None, true);
        assert_eq!(p.reserve(now), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_reservation_gives_its_token_back() {
        let now = Instant::now();
        let mut p = Pacer::new(now);
        p.reserve(now);
        p.complete(now, rl(30.0, 1.0, 1.0), false);
        assert_eq!(p.reserve(now), Duration::ZERO);
        p.cancel(now);
        assert_eq!(p.reserve(now), Duration::ZERO);
    }

    /// The service's bucket, as the documentation describes it and the emulator implements it.
    struct ServiceBucket {
        rate: f64,
        burst: f64,
        tokens: f64,
        at: Instant,
    }

    impl ServiceBucket {
        fn take(&mut self, now: Instant) -> (bool, RateLimitHeaders) {
            let dt = now.saturating_duration_since(self.at).as_secs_f64();
            self.tokens = (self.tokens + dt * self.rate).min(self.burst);
            self.at = now;
            let ok = self.tokens >= 1.0;
            if ok {
                self.tokens -= 1.0;
            }
            let h = RateLimitHeaders {
                limit: self.rate,
                remaining: self.tokens.floor(),
                reset: Some(Duration::from_secs_f64(
                    (self.burst - self.tokens) / self.rate,
                )),
            };
            (ok, h)
        }
    }

    /// Eight workers share one pacer and a service with 30 req/s, 5 ms away: 300 requests
    /// finish within a few percent of the floor ((300 - 30) / 30 s) with no 429 at all.
    #[tokio::test(start_paused = true)]
    async fn a_long_run_sits_at_the_limit_without_429s() {
        use std::sync::{Arc, Mutex};
        let start = Instant::now();
        let pacer = Arc::new(Mutex::new(Pacer::new(start)));
        let service = Arc::new(Mutex::new(ServiceBucket {
            rate: 30.0,
            burst: 30.0,
            tokens: 30.0,
            at: start,
        }));
        let todo = Arc::new(Mutex::new(300u32));
        let rejected = Arc::new(Mutex::new(0u32));
        let mut workers = Vec::new();
        for _ in 0..8 {
            let (pacer, service, todo, rejected) = (
                pacer.clone(),
                service.clone(),
                todo.clone(),
                rejected.clone(),
            );
            workers.push(tokio::spawn(async move {
                loop {
                    {
                        let mut t = todo.lock().unwrap();
                        if *t == 0 {
                            return;
                        }
                        *t -= 1;
                    }
                    loop {
                        let wait = pacer.lock().unwrap().reserve(Instant::now());
                        tokio::time::sleep(wait).await;
                        let blocked = pacer.lock().unwrap().blocked_for(Instant::now());
                        tokio::time::sleep(blocked).await;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        let (ok, h) = service.lock().unwrap().take(Instant::now());
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        pacer.lock().unwrap().complete(Instant::now(), Some(h), !ok);
                        if ok {
                            break;
                        }
                        *rejected.lock().unwrap() += 1;
                    }
                }
            }));
        }
        for w in workers {
            w.await.unwrap();
        }
        let took = start.elapsed().as_secs_f64();
        let floor = (300.0 - 30.0) / 30.0;
        assert_eq!(*rejected.lock().unwrap(), 0, "no 429");
        assert!(
            took <= floor * 1.03 + 0.02,
            "took {took:.3} s, floor {floor:.3} s"
        );
        assert!(
            took >= floor * 0.99,
            "faster than the service allows? {took:.3} s"
        );
    }
}
