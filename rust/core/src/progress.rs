//! Progress reporting and cancellation shared between a running engine and an observer thread.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Rows processed so far, and a flag the observer sets to stop the run. The engine publishes
/// progress every [`Progress::EVERY`] timestamps and at the end of each chunk, so the cost in the
/// loop is one counter test per timestamp.
#[derive(Debug, Default)]
pub struct Progress {
    rows: AtomicU64,
    cancelled: AtomicBool,
}

impl Progress {
    /// Timestamps between two updates.
    pub const EVERY: u64 = 1024;

    /// A fresh counter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rows (bars) processed so far.
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    /// Asks the engine to stop at its next update.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// Whether [`Progress::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    pub(crate) fn publish(&self, rows: u64) {
        self.rows.store(rows, Ordering::Relaxed);
    }
}
