//! Cooperative cancellation: a flag the long computations (simulation, reconstruction, cut
//! finding) check between steps, so a job past its deadline or a server shutting down stops
//! computing instead of burning a core for minutes. Knows nothing of who sets it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use thiserror::Error;

/// A computation stopped because its [`Cancel`] flag was raised.
#[derive(Debug, Clone, Copy, Error, PartialEq, Eq)]
#[error("cancelled (deadline passed or the server is stopping)")]
pub struct Cancelled;

/// A shared flag; the default never cancels and costs nothing to check.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Option<Arc<AtomicBool>>);

impl Cancel {
    /// A flag that [`Cancel::cancel`] (on this or any clone) raises.
    pub fn new() -> Cancel {
        Cancel(Some(Arc::new(AtomicBool::new(false))))
    }

    pub fn cancel(&self) {
        if let Some(flag) = &self.0 {
            flag.store(true, Ordering::Release);
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.as_ref().is_some_and(|f| f.load(Ordering::Acquire))
    }

    /// `Err(Cancelled)` once raised: for `?` between steps.
    pub fn check(&self) -> Result<(), Cancelled> {
        if self.is_cancelled() {
            Err(Cancelled)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_flag_and_the_default_never_cancels() {
        let c = Cancel::new();
        let seen = c.clone();
        assert_eq!(seen.check(), Ok(()));
        c.cancel();
        assert_eq!(seen.check(), Err(Cancelled));
        let never = Cancel::default();
        never.cancel();
        assert!(!never.is_cancelled());
    }
}
