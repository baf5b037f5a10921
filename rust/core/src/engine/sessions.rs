//! Trading sessions inside the loop: the timestamps that close a session, with a cursor, so
//! that DAY orders expire at the session's close rather than after their first bar
//! (`docs/semantics.md`, *Trading calendars and sessions*). The cursor moves only when the
//! fill passes ask (a DAY order is in the book), so runs without sessions pay nothing per
//! timestamp.

use super::Engine;
use crate::error::{BacktestError, Result};
use crate::types::Ts;

/// The last timestamp of each session in the data, increasing, and a cursor.
#[derive(Debug, Default)]
pub(super) struct Sessions {
    closes: Vec<Ts>,
    next: usize,
    /// Whether the run has sessions at all.
    pub(super) on: bool,
}

impl Sessions {
    /// Whether timestamp `ts` closes its session (timestamps asked in increasing order).
    #[inline]
    pub(super) fn closes_at(&mut self, ts: Ts) -> bool {
        while self.next < self.closes.len() && self.closes[self.next] < ts {
            self.next += 1;
        }
        self.closes.get(self.next) == Some(&ts)
    }
}

impl Engine {
    /// Sets the run's sessions by the last data timestamp of each (strictly increasing). With
    /// sessions, a DAY order expires after the fill pass of the last timestamp of the session
    /// in which it became eligible, whether or not its asset had a bar then.
    pub fn set_session_closes(&mut self, closes: Vec<Ts>) -> Result<()> {
        if let Some(row) = closes.windows(2).position(|w| w[0] >= w[1]) {
            return Err(BacktestError::data(
                "sessions.close",
                row + 1,
                "sort_order: session closes must be strictly increasing",
            ));
        }
        self.sessions = Sessions {
            closes,
            next: 0,
            on: true,
        };
        Ok(())
    }
}
