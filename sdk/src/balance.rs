//! Choosing an endpoint: power of two choices on calls in progress, and ejection with backoff of an endpoint
//! that fails repeatedly (then one call probes it back).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use rand::Rng;
use tokio::time::Instant;

use crate::config::{EjectionPolicy, RetryPolicy};

/// Failure history of one endpoint.
#[derive(Debug, Default)]
pub(crate) struct Health {
    state: Mutex<HealthState>,
    /// Some failure is on record (`state` is not the default): a success has something to clear. Lets the
    /// common case, success after success, skip the lock.
    marked: AtomicBool,
}

#[derive(Debug, Default, Clone, Copy)]
struct HealthState {
    consecutive_failures: u32,
    ejections_in_a_row: u32,
    ejected_until: Option<Instant>,
}

impl Health {
    /// A call on this endpoint succeeded: back in full service.
    pub fn success(&self) {
        if !self.marked.load(Ordering::Acquire) {
            return;
        }
        if let Ok(mut s) = self.state.lock() {
            *s = HealthState::default();
            self.marked.store(false, Ordering::Release);
        }
    }

    /// A call on this endpoint failed in a way that says the endpoint is unwell.
    pub fn failure(&self, policy: &EjectionPolicy) {
        let Ok(mut s) = self.state.lock() else { return };
        self.marked.store(true, Ordering::Release);
        s.consecutive_failures += 1;
        if s.consecutive_failures >= policy.consecutive_failures.max(1) {
            let shift = s.ejections_in_a_row.min(20);
            let d = policy
                .base_ejection
                .saturating_mul(1u32 << shift)
                .min(policy.max_ejection);
            s.ejected_until = Some(Instant::now() + d);
            s.ejections_in_a_row += 1;
            // After the ejection one probe decides: one more failure ejects again at once.
            s.consecutive_failures = policy.consecutive_failures.max(1) - 1;
        }
    }

    /// True while ejected.
    pub fn is_ejected(&self) -> bool {
        if !self.marked.load(Ordering::Acquire) {
            return false;
        }
        self.state
            .lock()
            .ok()
            .and_then(|s| s.ejected_until)
            .is_some_and(|t| Instant::now() < t)
    }

    fn ejected_until(&self) -> Option<Instant> {
        self.state.lock().ok().and_then(|s| s.ejected_until)
    }
}

/// Pick an endpoint: two random candidates among those not ejected, the one with fewer calls in progress wins.
/// When every endpoint is ejected, the one whose ejection ends first is probed.
pub(crate) fn pick(load: &[usize], health: &[&Health], rng: &mut impl Rng) -> usize {
    let n = load.len();
    if n <= 1 {
        return 0;
    }
    let live: Vec<usize> = (0..n).filter(|&i| !health[i].is_ejected()).collect();
    match live.len() {
        0 => (0..n)
            .min_by_key(|&i| health[i].ejected_until())
            .unwrap_or(0),
        1 => live[0],
        m => {
            let a = rng.gen_range(0..m);
            let mut b = rng.gen_range(0..m - 1);
            if b >= a {
                b += 1;
            }
            let (a, b) = (live[a], live[b]);
            if load[b] < load[a] {
                b
            } else {
                a
            }
        }
    }
}

/// The retry budget: each call earns `ratio` of a token, each retry spends one (Finagle's RetryBudget idea).
///
/// Lock-free, in millionths of a token; a full budget (the steady state when nothing is retried) is only read,
/// so calls on many threads do not contend for it.
#[derive(Debug)]
pub(crate) struct RetryBudget {
    micros: AtomicU64,
    ratio: u64,
    cap: u64,
}

/// Millionths of a token per token.
const MICRO: f64 = 1e6;

impl RetryBudget {
    pub fn new(policy: &RetryPolicy) -> Self {
        let initial = policy.budget_initial as f64;
        let ratio = policy.budget_ratio.max(0.0);
        RetryBudget {
            micros: AtomicU64::new((initial * MICRO) as u64),
            ratio: (ratio * MICRO) as u64,
            cap: ((initial.max(1.0) + 100.0 * ratio) * MICRO) as u64,
        }
    }

    /// A call was made.
    pub fn deposit(&self) {
        let now = self.micros.load(Ordering::Relaxed);
        if now >= self.cap || self.ratio == 0 {
            return;
        }
        let _ = self
            .micros
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |t| {
                (t < self.cap).then(|| t.saturating_add(self.ratio).min(self.cap))
            });
    }

    /// Spend a token for a retry; false when the budget is spent.
    pub fn withdraw(&self) -> bool {
        let one = MICRO as u64;
        self.micros
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |t| t.checked_sub(one))
            .is_ok()
    }
}

/// How long an ejection lasts after `n` ejections in a row (for docs and tests).
#[cfg(test)]
fn ejection_time(policy: &EjectionPolicy, n: u32) -> std::time::Duration {
    policy
        .base_ejection
        .saturating_mul(1u32 << n.min(20))
        .min(policy.max_ejection)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn an_endpoint_failing_repeatedly_is_ejected_with_backoff_and_probed_back() {
        let policy = EjectionPolicy {
            consecutive_failures: 3,
            base_ejection: Duration::from_secs(1),
            max_ejection: Duration::from_secs(4),
        };
        let h = Health::default();
        h.failure(&policy);
        h.failure(&policy);
        assert!(!h.is_ejected());
        h.failure(&policy);
        assert!(h.is_ejected());
        tokio::time::advance(ejection_time(&policy, 0) - Duration::from_millis(1)).await;
        assert!(h.is_ejected());
        tokio::time::advance(Duration::from_millis(2)).await;
        assert!(!h.is_ejected(), "probed back after the ejection");
        // The probe fails: ejected again at once, for twice as long.
        h.failure(&policy);
        assert!(h.is_ejected());
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert!(h.is_ejected());
        tokio::time::advance(Duration::from_millis(600)).await;
        assert!(!h.is_ejected());
        // The probe succeeds: back in service, history forgotten.
        h.success();
        h.failure(&policy);
        assert!(!h.is_ejected());
    }

    #[tokio::test(start_paused = true)]
    async fn pick_prefers_the_less_loaded_and_skips_ejected() {
        let policy = EjectionPolicy {
            consecutive_failures: 1,
            ..EjectionPolicy::default()
        };
        let hs = [Health::default(), Health::default(), Health::default()];
        let refs: Vec<&Health> = hs.iter().collect();
        let mut rng = rand::thread_rng();
        // Endpoint 0 is the busiest: with two choices out of three it is picked only when both are 0 — never.
        for _ in 0..200 {
            assert_ne!(pick(&[10, 1, 2], &refs, &mut rng), 0);
        }
        hs[1].failure(&policy);
        for _ in 0..200 {
            assert_ne!(pick(&[10, 1, 2], &refs, &mut rng), 1);
        }
        tokio::time::advance(Duration::from_millis(10)).await;
        hs[0].failure(&policy);
        hs[2].failure(&policy);
        // All ejected: the first to come back is probed.
        let p = pick(&[0, 0, 0], &refs, &mut rng);
        assert_eq!(p, 1);
    }

    #[test]
    fn the_budget_caps_retries() {
        let policy = RetryPolicy {
            budget_initial: 2,
            budget_ratio: 0.5,
            ..RetryPolicy::default()
        };
        let b = RetryBudget::new(&policy);
        assert!(b.withdraw());
        assert!(b.withdraw());
        assert!(!b.withdraw());
        b.deposit();
        assert!(!b.withdraw());
        b.deposit();
        assert!(b.withdraw());
    }
}
