//! The gateways of a [`GatewayStore`](super::GatewayStore) and what it has learnt about each:
//! how many requests it may have in flight, whether it failed lately, and whether it serves
//! CARs. Requests go to the gateways in order of health: those in good standing first, in
//! the order given; then those set back (three failures in a row, a lie, a `Retry-After`),
//! the soonest forgiven first. No gateway is ever left out: when all are set back, they are
//! still tried, so a reader with one gateway is slowed, never stopped.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use url::Url;

/// Consecutive failures after which a gateway is set back.
pub(crate) const FAILURES_TO_SET_BACK: u32 = 3;

/// Answer times remembered per gateway, for its p90.
const SAMPLES: usize = 64;

/// Answers needed before the p90 is trusted.
const MIN_SAMPLES: usize = 8;

/// How long a request waits before it is raced on the next gateway while too few answer
/// times are known.
const DEFAULT_HEDGE: Duration = Duration::from_millis(500);

/// The shortest wait before a request is raced (a fast gateway's p90 is noise).
const MIN_HEDGE: Duration = Duration::from_millis(20);

/// One gateway.
#[derive(Debug)]
pub(crate) struct Gateway {
    /// Its base URL, without credentials.
    pub(crate) url: Url,
    /// The credentials of its own URL: sent to it and never to another gateway.
    pub(crate) auth: Option<(String, Option<String>)>,
    /// An `Authorization` value given for its host (a Kubo node's credentials, for the
    /// node's own gateway); sent to it alone, in place of `auth`.
    pub(crate) authorization: Option<reqwest::header::HeaderValue>,
    /// Requests it may have in flight.
    pub(crate) permits: Semaphore,
    health: Mutex<Health>,
}

#[derive(Debug, Default)]
struct Health {
    /// Failures since its last success.
    failures: u32,
    /// Set back until then.
    until: Option<Instant>,
    /// It answered a CAR request with something that is not a CAR: ask it for blocks only.
    no_car: bool,
    /// Its latest answer times, the newest last.
    latencies: VecDeque<Duration>,
}

impl Gateway {
    /// A gateway at `url` (credentials in it are taken out and kept for it alone).
    pub(crate) fn new(mut url: Url, concurrency: usize) -> Self {
        let auth = (!url.username().is_empty())
            .then(|| (url.username().to_owned(), url.password().map(str::to_owned)));
        let _ = url.set_username("");
        let _ = url.set_password(None);
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Self {
            url,
            auth,
            authorization: None,
            permits: Semaphore::new(concurrency.max(1)),
            health: Mutex::default(),
        }
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        // Plain counters replaced whole: a panic elsewhere cannot leave them torn.
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When it is forgiven, if it is set back now.
    fn set_back_until(&self, now: Instant) -> Option<Instant> {
        self.health().until.filter(|&t| t > now)
    }

    /// It answered as it should.
    pub(crate) fn succeeded(&self) {
        let mut h = self.health();
        h.failures = 0;
        h.until = None;
    }

    /// It answered a block request truly in `took`.
    pub(crate) fn answered_in(&self, took: Duration) {
        let mut h = self.health();
        if h.latencies.len() == SAMPLES {
            h.latencies.pop_front();
        }
        h.latencies.push_back(took);
    }

    /// How long to wait for its answer before racing the request on the next gateway: the
    /// p90 of its recent answer times.
    pub(crate) fn hedge_after(&self) -> Duration {
        let h = self.health();
        if h.latencies.len() < MIN_SAMPLES {
            return DEFAULT_HEDGE;
        }
        let mut sorted: Vec<Duration> = h.latencies.iter().copied().collect();
        sorted.sort_unstable();
        let at = (sorted.len() * 9 / 10).min(sorted.len() - 1);
        sorted[at].max(MIN_HEDGE)
    }

    /// It failed (no answer, a server error): the third failure in a row sets it back
    /// for `penalty`.
    pub(crate) fn failed(&self, penalty: Duration) {
        let mut h = self.health();
        h.failures = h.failures.saturating_add(1);
        if h.failures >= FAILURES_TO_SET_BACK {
            h.until = Some(Instant::now() + penalty);
        }
    }

    /// It sent bytes that are not what it was asked for, or asked to be left alone for
    /// `wait` (`Retry-After`): set back at once.
    pub(crate) fn set_back(&self, wait: Duration) {
        let mut h = self.health();
        h.failures = h.failures.saturating_add(1);
        let until = Instant::now() + wait;
        h.until = Some(h.until.map_or(until, |t| t.max(until)));
    }

    /// Whether it may be asked for CARs.
    pub(crate) fn serves_car(&self) -> bool {
        !self.health().no_car
    }

    /// It does not serve CARs.
    pub(crate) fn no_car(&self) {
        self.health().no_car = true;
    }

    /// Whether it is set back now.
    pub(crate) fn is_set_back(&self) -> bool {
        self.set_back_until(Instant::now()).is_some()
    }
}

/// The gateways in the order to try them now.
pub(crate) fn order(gateways: &[Gateway]) -> Vec<&Gateway> {
    let now = Instant::now();
    let mut ranked: Vec<(Option<Instant>, usize, &Gateway)> = gateways
        .iter()
        .enumerate()
        .map(|(i, g)| (g.set_back_until(now), i, g))
        .collect();
    // `None` (in good standing) sorts first; then the soonest forgiven; ties in given order.
    ranked.sort_by_key(|&(until, i, _)| (until, i));
    ranked.into_iter().map(|(_, _, g)| g).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateways() -> Vec<Gateway> {
        ["http://a/", "http://u:p@b/x", "http://c"]
            .iter()
            .map(|u| Gateway::new(Url::parse(u).unwrap(), 2))
            .collect()
    }

    fn names(order: &[&Gateway]) -> Vec<String> {
        order
            .iter()
            .map(|g| g.url.host_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn credentials_stay_with_their_gateway() {
        let g = gateways();
        assert_eq!(g[1].url.as_str(), "http://b/x/");
        assert_eq!(g[1].auth, Some(("u".into(), Some("p".into()))));
        assert_eq!(g[0].auth, None);
        assert_eq!(g[2].url.as_str(), "http://c/");
    }

    #[test]
    fn three_failures_in_a_row_set_a_gateway_back_and_a_success_forgives() {
        let g = gateways();
        let hour = Duration::from_hours(1);
        g[0].failed(hour);
        g[0].failed(hour);
        assert_eq!(names(&order(&g)), ["a", "b", "c"]);
        g[0].succeeded();
        g[0].failed(hour);
        g[0].failed(hour);
        assert_eq!(names(&order(&g)), ["a", "b", "c"], "the count restarted");
        g[0].failed(hour);
        assert!(g[0].is_set_back());
        assert_eq!(names(&order(&g)), ["b", "c", "a"]);
        // A lie sets back at once; the sooner forgiven comes first among the set back.
        g[1].set_back(Duration::from_mins(1));
        assert_eq!(names(&order(&g)), ["c", "b", "a"]);
        // All set back: all still tried.
        g[2].set_back(Duration::from_hours(2));
        assert_eq!(names(&order(&g)), ["b", "a", "c"]);
        g[0].succeeded();
        assert_eq!(names(&order(&g)), ["a", "b", "c"]);
    }

    #[test]
    fn requests_are_raced_after_the_p90_of_recent_answers() {
        let g = gateways();
        assert_eq!(g[0].hedge_after(), DEFAULT_HEDGE);
        for ms in 1..=100 {
            g[0].answered_in(Duration::from_millis(ms));
        }
        // The last 64 answers: 37..=100 ms; their p90 is the 58th, 94 ms.
        assert_eq!(g[0].hedge_after(), Duration::from_millis(94));
        for _ in 0..SAMPLES {
            g[1].answered_in(Duration::from_micros(300));
        }
        assert_eq!(g[1].hedge_after(), MIN_HEDGE);
    }
}
