//! When to try a request again, and how long to wait first.
//!
//! Retried: 429 (the pacer holds every request until `X-RateLimit-Reset`), 500/502/503/504,
//! timeouts and transport errors, with exponential backoff and jitter (backon's generator, on
//! tokio's clock), never shorter than a `Retry-After` the service sent. Requests that are not
//! idempotent are retried too: the only one is create, and a create that was applied although
//! its response was lost answers the retry with 422 "has already been taken", which
//! [`Client::create`](super::Client::create) resolves by looking the policy up.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// The first backoff; it doubles up to [`MAX_BACKOFF`], plus up to 100% jitter.
pub const MIN_BACKOFF: Duration = Duration::from_millis(250);
pub const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// A `Retry-After` longer than this is not honoured in full: the caller's own retries (the
/// daemon's backoff) take over.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// 429s are answered by waiting for the reset, which is cheap and certain to end; they get
/// this many attempts per allowed error retry (at least this many in all).
pub const RATE_LIMIT_ATTEMPTS_PER_RETRY: u32 = 4;

/// Statuses that say "try again": the service (or a proxy before it) was briefly unable.
pub fn is_retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

/// `Retry-After` in seconds (the HTTP-date form is rare from APIs and ignored).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// The delays between attempts of one request.
#[derive(Debug)]
pub struct Backoff {
    inner: backon::ExponentialBackoff,
}

impl Backoff {
    pub fn new(seed: Option<u64>) -> Self {
        let mut builder = ExponentialBuilder::default()
            .with_min_delay(MIN_BACKOFF)
            .with_max_delay(MAX_BACKOFF)
            .without_max_times()
            .with_jitter();
        if let Some(seed) = seed {
            builder = builder.with_jitter_seed(seed);
        }
        Backoff {
            inner: builder.build(),
        }
    }

    /// The next delay, at least `floor` (a `Retry-After`).
    pub fn next_delay(&mut self, floor: Option<Duration>) -> Duration {
        let d = self.inner.next().unwrap_or(MAX_BACKOFF);
        floor.map_or(d, |f| d.max(f))
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let mut b = Backoff::new(Some(7));
        let delays: Vec<Duration> = (0..8).map(|_| b.next_delay(None)).collect();
        let mut base = MIN_BACKOFF;
        for d in &delays {
            assert!(*d >= base && *d <= base * 2, "{delays:?}");
            base = (base * 2).min(MAX_BACKOFF);
        }
        assert!(delays.iter().all(|d| *d <= MAX_BACKOFF * 2));
    }

    #[test]
    fn retry_after_is_a_floor_and_is_capped() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("5"));
        let floor = retry_after(&h);
        assert_eq!(floor, Some(Duration::from_secs(5)));
        assert_eq!(
            Backoff::new(Some(1)).next_delay(floor),
            Duration::from_secs(5)
        );
        h.insert(RETRY_AFTER, HeaderValue::from_static("86400"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(60)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn only_transient_statuses_are_retried() {
        for s in [500, 502, 503, 504] {
            assert!(is_retryable_status(StatusCode::from_u16(s).unwrap()));
        }
        for s in [200, 400, 401, 404, 422, 429, 501] {
            assert!(
                !is_retryable_status(StatusCode::from_u16(s).unwrap()),
                "{s}"
            );
        }
    }
}
