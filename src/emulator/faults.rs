//! Fault injection: a 5xx answered before acting, a 5xx answered after the change was applied
//! (the lost response), and a request that is never answered — each by probability and/or
//! "the next N matching requests", drawn from a seeded RNG so tests are deterministic.

use axum::http::{Method, StatusCode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Which requests a fault may hit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum FaultTarget {
    /// Every API request.
    #[default]
    All,
    /// POST, PUT, PATCH and DELETE.
    Mutating,
    /// Requests with this method only, e.g. `PUT` for uploads.
    Method(Method),
}

impl FaultTarget {
    fn matches(&self, method: &Method) -> bool {
        match self {
            FaultTarget::All => true,
            FaultTarget::Mutating => is_mutating(method),
            FaultTarget::Method(m) => m == method,
        }
    }
}

/// One kind of failure. The first `skip` matching requests pass; then the next `next` fail;
/// after those, each matching request fails with `probability`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Fault {
    pub probability: f64,
    pub next: u32,
    /// Matching requests let through before `next` starts counting: "the second delete hangs"
    /// is `Fault::next(1).after_first(1)`.
    pub skip: u32,
    pub target: FaultTarget,
    /// The status answered; `None`: 503 before acting, 502 after acting.
    pub status: Option<u16>,
}

impl Fault {
    /// Never fails.
    pub fn none() -> Self {
        Fault::default()
    }

    /// Fails each matching request with probability `p`.
    pub fn rate(p: f64) -> Self {
        Fault {
            probability: p,
            ..Fault::default()
        }
    }

    /// Fails the next `n` matching requests.
    pub fn next(n: u32) -> Self {
        Fault {
            next: n,
            ..Fault::default()
        }
    }

    /// Restricts the fault to `target`.
    pub fn on(mut self, target: FaultTarget) -> Self {
        self.target = target;
        self
    }

    /// Restricts the fault to mutating requests.
    pub fn mutating(self) -> Self {
        self.on(FaultTarget::Mutating)
    }

    /// Lets the first `n` matching requests through before the fault starts.
    pub fn after_first(mut self, n: u32) -> Self {
        self.skip = n;
        self
    }

    /// Answers `status` instead of the default.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }
}

/// Every injected failure, with the seed of their RNG.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Faults {
    /// Answer an error without acting: the request changed nothing (default 503).
    pub before: Fault,
    /// Act, then answer an error: the change was applied but its response is lost (default 502).
    /// Only requests that succeeded are turned into this error.
    pub after: Fault,
    /// Never answer, until the server shuts down or [`super::Emulator::release_hung`].
    pub hang: Fault,
    /// Seed of the RNG behind the probabilities.
    pub seed: u64,
}

/// POST, PUT, PATCH or DELETE.
pub(crate) fn is_mutating(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

#[derive(Debug)]
pub(crate) struct FaultState {
    faults: Faults,
    rng: StdRng,
}

impl FaultState {
    pub(crate) fn new(faults: Faults) -> Self {
        FaultState {
            rng: StdRng::seed_from_u64(faults.seed),
            faults,
        }
    }

    /// Should this request hang?
    pub(crate) fn hang(&mut self, method: &Method) -> bool {
        fire(&mut self.faults.hang, &mut self.rng, method)
    }

    /// The error to answer before acting, if any.
    pub(crate) fn before(&mut self, method: &Method) -> Option<StatusCode> {
        fire(&mut self.faults.before, &mut self.rng, method)
            .then(|| status(&self.faults.before, StatusCode::SERVICE_UNAVAILABLE))
    }

    /// The error to answer after a successful action, if any.
    pub(crate) fn after(&mut self, method: &Method) -> Option<StatusCode> {
        fire(&mut self.faults.after, &mut self.rng, method)
            .then(|| status(&self.faults.after, StatusCode::BAD_GATEWAY))
    }
}

fn status(fault: &Fault, default: StatusCode) -> StatusCode {
    fault
        .status
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(default)
}

fn fire(fault: &mut Fault, rng: &mut StdRng, method: &Method) -> bool {
    if !fault.target.matches(method) {
        return false;
    }
    if fault.skip > 0 {
        fault.skip -= 1;
        return false;
    }
    if fault.next > 0 {
        fault.next -= 1;
        return true;
    }
    // Draw only when a probability is set, so one fault's draws never shift another's.
    fault.probability > 0.0 && rng.random::<f64>() < fault.probability
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_n_fails_exactly_n_matching_requests() {
        let mut s = FaultState::new(Faults {
            before: Fault::next(2).mutating(),
            ..Faults::default()
        });
        assert_eq!(s.before(&Method::GET), None, "GET does not match");
        assert_eq!(
            s.before(&Method::POST),
            Some(StatusCode::SERVICE_UNAVAILABLE)
        );
        assert_eq!(
            s.before(&Method::DELETE),
            Some(StatusCode::SERVICE_UNAVAILABLE)
        );
        assert_eq!(s.before(&Method::POST), None);
    }

    #[test]
    fn after_first_lets_that_many_matching_requests_through() {
        let mut s = FaultState::new(Faults {
            hang: Fault::next(1)
                .after_first(2)
                .on(FaultTarget::Method(Method::DELETE)),
            ..Faults::default()
        });
        let hangs: Vec<bool> = [Method::DELETE, Method::GET, Method::DELETE, Method::DELETE]
            .iter()
            .chain(&[Method::DELETE])
            .map(|m| s.hang(m))
            .collect();
        assert_eq!(hangs, [false, false, false, true, false]);
    }

    #[test]
    fn probabilities_are_reproducible_from_the_seed() {
        let run = |seed| {
            let mut s = FaultState::new(Faults {
                after: Fault::rate(0.3),
                seed,
                ..Faults::default()
            });
            (0..200)
                .map(|_| s.after(&Method::PUT).is_some())
                .collect::<Vec<_>>()
        };
        let a = run(7);
        assert_eq!(a, run(7));
        let failures = a.iter().filter(|f| **f).count();
        assert!((30..90).contains(&failures), "{failures} of 200 at p=0.3");
    }

    #[test]
    fn statuses_default_to_503_before_and_502_after() {
        let mut s = FaultState::new(Faults {
            before: Fault::next(1),
            after: Fault::next(1).with_status(504),
            ..Faults::default()
        });
        assert_eq!(
            s.before(&Method::GET),
            Some(StatusCode::SERVICE_UNAVAILABLE)
        );
        assert_eq!(s.after(&Method::GET), Some(StatusCode::GATEWAY_TIMEOUT));
        assert!(!s.hang(&Method::GET));
    }
}
