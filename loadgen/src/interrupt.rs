//! The run's Ctrl-C/SIGTERM token, as the senders read it on every request they take.

use std::cell::Cell;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The run's Ctrl-C/SIGTERM token as a sender reads it: once per clock reading, and at least every
/// [`Interrupt::REUSE`] looks. `is_cancelled` takes the token's mutex, and the requests a connection takes between
/// two reads of the clock share one `now` (16 of them at `--pipeline 16`): one look at the token answers for them.
/// A cancellation is seen at the next clock reading, or within `REUSE` looks where the clock stands still (paused
/// time in tests).
pub struct Interrupt {
    token: CancellationToken,
    /// The last `now` at which the token was found not cancelled, and the looks answered from it since.
    clear_at: Cell<Option<(Instant, u32)>>,
}

impl Interrupt {
    /// Looks answered from one reading of the token, at most.
    pub const REUSE: u32 = 64;

    /// Reads `token`.
    pub fn new(token: CancellationToken) -> Interrupt {
        Interrupt {
            token,
            clear_at: Cell::new(None),
        }
    }

    /// Whether the run was interrupted, as of `now`.
    pub fn at(&self, now: Instant) -> bool {
        if let Some((at, looks)) = self.clear_at.get() {
            if at == now && looks < Self::REUSE {
                self.clear_at.set(Some((at, looks + 1)));
                return false;
            }
        }
        let cancelled = self.token.is_cancelled();
        self.clear_at.set((!cancelled).then_some((now, 0)));
        cancelled
    }

    /// The token itself, to wait on.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_interrupt_is_seen_at_the_next_clock_reading_or_within_its_reuse_limit() {
        let token = CancellationToken::new();
        let i = Interrupt::new(token.clone());
        let t0 = Instant::now();
        assert!(!i.at(t0));
        token.cancel();
        // The same reading answers from the last look, a bounded number of times.
        let mut looks = 0;
        while !i.at(t0) {
            looks += 1;
            assert!(looks <= Interrupt::REUSE, "never saw the cancellation");
        }
        assert_eq!(looks, Interrupt::REUSE);
        assert!(i.at(t0), "a cancellation, once seen, stays seen");
        // A new reading of the clock looks at the token at once.
        let token = CancellationToken::new();
        let i = Interrupt::new(token.clone());
        assert!(!i.at(t0));
        token.cancel();
        assert!(i.at(t0 + Duration::from_nanos(1)));
    }
}
