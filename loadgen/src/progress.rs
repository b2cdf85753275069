//! Progress on stderr with indicatif: only when stderr is a terminal and `--quiet` is off.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress line, or nothing.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

/// True when progress should be drawn: stderr is a terminal and the user did not ask for quiet.
pub fn wanted(quiet: bool) -> bool {
    !quiet && std::io::stderr().is_terminal()
}

impl Progress {
    /// Draws when `enabled`; `length` is the measured duration when known (a bar), else a spinner.
    pub fn new(enabled: bool, length: Option<Duration>) -> Progress {
        if !enabled {
            return Progress { bar: None };
        }
        let bar = match length {
            Some(d) => ProgressBar::new(d.as_secs().max(1)),
            None => ProgressBar::new_spinner(),
        };
        bar.set_draw_target(ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress { bar: Some(bar) }
    }

    /// The bar, for a thread that must print around it or clear it (`None` when not drawing).
    pub fn bar(&self) -> Option<ProgressBar> {
        self.bar.clone()
    }

    /// True when drawing.
    pub fn is_drawing(&self) -> bool {
        self.bar.is_some()
    }

    /// Shows a phase such as "warming up".
    pub fn phase(&self, msg: &str) {
        if let Some(b) = &self.bar {
            b.set_message(msg.to_string());
        }
    }

    /// Updates with the latest second: elapsed measured time, current rate, p99 so far, errors so far.
    pub fn update(&self, elapsed: Duration, rate: f64, p99_so_far: Duration, errors: u64) {
        if let Some(b) = &self.bar {
            b.set_position(elapsed.as_secs());
            b.set_message(format!(
                "{rate:.0} req/s  p99 {}  errors {errors}",
                crate::report::fmt_duration(p99_so_far)
            ));
        }
    }

    /// Removes the line.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_or_not_a_terminal_draws_nothing() {
        assert!(!wanted(true));
        let p = Progress::new(false, Some(Duration::from_secs(1)));
        assert!(!p.is_drawing());
        p.update(Duration::from_secs(1), 1.0, Duration::from_millis(1), 0);
        p.finish();
    }
}
