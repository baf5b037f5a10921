//! Trading sessions inside the loop: the timestamps that close a session, with a cursor, so
//! that DAY orders expire at the session's close rather than after their first bar, market-on-
//! close orders fill at the session's last timestamp, and the gap rule applies at each
//! asset's first bar of a session only (`docs/semantics.md`, *Trading calendars and
//! sessions*). Runs without sessions test one boolean per timestamp.

use super::Engine;
use crate::error::{BacktestError, Result};
use crate::types::{AssetId, Ts};

/// The last timestamp of each session in the data, increasing, and a cursor.
#[derive(Debug, Default)]
pub(super) struct Sessions {
    closes: Vec<Ts>,
    next: usize,
    /// Whether the run has sessions at all.
    pub(super) on: bool,
    /// Whether the current timestamp is the last of its session.
    pub(super) at_close: bool,
    /// Per asset: 1 + the session of its latest bar before this timestamp's (0: none yet).
    last_session: Vec<u32>,
}

impl Sessions {
    /// The last data timestamp of each session.
    pub(super) fn closes(&self) -> &[Ts] {
        &self.closes
    }

    /// Moves to timestamp `ts` (called once per timestamp, in order, before its fills).
    #[inline]
    pub(super) fn enter(&mut self, ts: Ts) {
        self.at_close = self.closes_at(ts);
    }

    /// Whether `asset`'s bar now is its first of this session (the gap rule applies to it).
    #[inline]
    pub(super) fn opens(&self, asset: AssetId) -> bool {
        self.last_session[asset as usize] != self.next as u32 + 1
    }

    /// After the fill pass: the assets of `group` had a bar in this session.
    pub(super) fn saw(&mut self, group: &[AssetId]) {
        let session = self.next as u32 + 1;
        for &asset in group {
            self.last_session[asset as usize] = session;
        }
    }

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
    /// in which it became eligible, whether or not its asset had a bar then; a market-on-close
    /// order fills only at a session's last timestamp; and a stop or limit that a bar opens
    /// beyond fills at the open (the gap rule) only on the asset's first bar of a session,
    /// inside a session at its level (clamped into the bar).
    pub fn set_session_closes(&mut self, closes: Vec<Ts>) -> Result<()> {
        if let Some(row) = closes.windows(2).position(|w| w[0] >= w[1]) {
            return Err(BacktestError::data(
                "sessions.close",
                row + 1,
                "sort_order: session closes must be strictly increasing",
            ));
        }
        if let Some(risk) = self.risk.as_mut() {
            risk.set_session_closes(closes.clone());
        }
        self.sessions = Sessions {
            closes,
            next: 0,
            on: true,
            at_close: false,
            last_session: vec![0; self.n_assets as usize],
        };
        Ok(())
    }
}
