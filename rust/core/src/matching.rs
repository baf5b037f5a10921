//! Matching orders against a bar: the intrabar price path, trigger times and fill prices.
//!
//! A bar is walked as a path of four points, open → first extreme → second extreme → close,
//! each leg a straight line. Which extreme comes first is the [`PathPolicy`]. An order's
//! *trigger time* is where along that path (0 = open, 3 = close) its condition is first met;
//! orders of one asset fill in trigger-time order, so a stop and a target inside one bar resolve
//! deterministically. Conventions (documented in `docs/semantics.md`):
//!
//! - a bar that opens beyond a stop or a limit fills at the open (gap rule), unless its path is
//!   [`BarPath::continuous`] (inside a trading session, after the asset's first bar of it):
//!   then at the level, clamped into the bar;
//! - a stop (or trailing stop) triggered inside the bar fills at its level, then slippage;
//! - a limit fills at its level (never worse), after touching it or, with a through
//!   requirement, after trading beyond it; no slippage on limit fills;
//! - a stop-limit triggers like a stop and then fills only if the trigger price is within its
//!   limit; otherwise it rests as a limit from the next bar.

use crate::types::Side;

/// Which extreme of a bar the path visits first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathPolicy {
    /// The extreme nearer the open first (ties: the low).
    OhlcWalk,
    /// The extreme adverse to the position held first (low first when long, high when short).
    Pessimistic,
    /// The extreme favourable to the position first.
    Optimistic,
}

/// When a limit order counts as executable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LimitFill {
    /// When the price touches the limit.
    Touch,
    /// When the price trades beyond the limit by this many price units (ticks × tick size).
    ThroughAmount(f64),
    /// When the price trades beyond the limit by this fraction of the limit price.
    ThroughFraction(f64),
}

impl LimitFill {
    /// How far beyond `limit` the price must trade.
    #[inline]
    pub fn margin(&self, limit: f64) -> f64 {
        match *self {
            LimitFill::Touch => 0.0,
            LimitFill::ThroughAmount(a) => a,
            LimitFill::ThroughFraction(f) => f * limit,
        }
    }
}

/// The bar as a four-point path.
#[derive(Debug, Clone, Copy)]
pub struct BarPath {
    points: [f64; 4],
    /// Bar low.
    pub low: f64,
    /// Bar high.
    pub high: f64,
    /// Whether the open may gap beyond a level (the gap rule); false inside a session.
    gaps: bool,
}

impl BarPath {
    /// The path of a bar for a position of sign `held` (+1 long, -1 short, 0 flat).
    pub fn new(open: f64, high: f64, low: f64, close: f64, policy: PathPolicy, held: f64) -> Self {
        let low_first = match policy {
            PathPolicy::OhlcWalk => (open - low) <= (high - open),
            PathPolicy::Pessimistic if held != 0.0 => held > 0.0,
            PathPolicy::Optimistic if held != 0.0 => held < 0.0,
            _ => (open - low) <= (high - open),
        };
        let points = if low_first {
            [open, low, high, close]
        } else {
            [open, high, low, close]
        };
        BarPath {
            points,
            low,
            high,
            gaps: true,
        }
    }

    /// The path of a bar whose open follows the previous bar's close without a gap (inside a
    /// trading session): a level the open is already beyond fills at the level, clamped into
    /// the bar, rather than at the open.
    pub fn continuous(mut self) -> Self {
        self.gaps = false;
        self
    }

    /// `level` clamped into the bar.
    #[inline]
    fn inside(&self, level: f64) -> f64 {
        level.clamp(self.low, self.high)
    }

    /// The open.
    #[inline]
    pub fn open(&self) -> f64 {
        self.points[0]
    }

    /// The close.
    #[inline]
    pub fn close(&self) -> f64 {
        self.points[3]
    }

    /// Price at path time `t` in [0, 3].
    pub fn price_at(&self, t: f64) -> f64 {
        let k = (t as usize).min(2); // t >= 0: truncation is floor, without a libm call
        let frac = t - k as f64;
        // The path's own points exactly (the open at 0, the close at 3): interpolating to them
        // loses them when the bar's range dwarfs its prices (1e12 high, 1e-4 close).
        if frac == 0.0 {
            return self.points[k];
        }
        if frac >= 1.0 {
            return self.points[k + 1];
        }
        self.points[k] + (self.points[k + 1] - self.points[k]) * frac
    }

    /// First time `>= from` at which the price is `>= level` (`up`) or `<= level` (`!up`).
    pub fn first_reach(&self, level: f64, up: bool, from: f64) -> Option<f64> {
        let reached = |p: f64| if up { p >= level } else { p <= level };
        if reached(self.price_at(from)) {
            return Some(from);
        }
        let first_leg = (from as usize).min(2);
        for k in first_leg..3 {
            let (a, b) = (self.points[k], self.points[k + 1]);
            if reached(b) {
                let t = k as f64 + if b != a { (level - a) / (b - a) } else { 0.0 };
                return Some(t.max(from));
            }
        }
        None
    }
}

/// Trigger of a stop on `side` at `stop` along `path` from time `from`: `(time, reference
/// price)`; the reference is the price at `from` when already beyond the stop (gap), else the
/// stop level.
pub fn stop_trigger(path: &BarPath, side: Side, stop: f64, from: f64) -> Option<(f64, f64)> {
    let up = side == Side::Buy;
    let t = path.first_reach(stop, up, from)?;
    let at = path.price_at(t);
    let gapped = if up { at > stop } else { at < stop };
    if gapped && from == 0.0 && !path.gaps {
        return Some((t, path.inside(stop)));
    }
    Some((t, if gapped { at } else { stop }))
}

/// Trigger of a limit on `side` at `limit`: `(time, fill price)`; the fill is the price at
/// `from` when it is already better than the limit, else the limit itself.
pub fn limit_trigger(
    path: &BarPath,
    side: Side,
    limit: f64,
    mode: LimitFill,
    from: f64,
) -> Option<(f64, f64)> {
    let buy = side == Side::Buy;
    let start = path.price_at(from);
    let margin = mode.margin(limit);
    // Already better than the limit: fill at once. With a through rule, a price exactly at the
    // limit is only a touch.
    let better = if buy { start < limit } else { start > limit };
    if better && from == 0.0 && !path.gaps {
        return Some((from, path.inside(limit)));
    }
    if better || (start == limit && margin == 0.0) {
        return Some((from, start));
    }
    let level = if buy { limit - margin } else { limit + margin };
    let t = path.first_reach(level, !buy, from)?;
    Some((t, limit))
}

/// Trigger of a trailing stop protecting a position (`long`: a sell stop below the mark) whose
/// water mark starts at `mark` and follows the path's favourable moves inside the bar:
/// `(time, reference price)`. At the open the mark first takes the open; a bar that opens
/// through the level fills at the open (gap rule), else at the level.
pub fn trailing_trigger(
    path: &BarPath,
    long: bool,
    mark: f64,
    trail: crate::orders::Trail,
) -> Option<(f64, f64)> {
    let side = if long { 1.0 } else { -1.0 };
    let level_of = |m: f64| trail.level(m, long);
    let open = path.points[0];
    let start_level = level_of(mark);
    if side * (open - start_level) <= 0.0 {
        let price = if path.gaps {
            open
        } else {
            path.inside(start_level)
        };
        return Some((0.0, price));
    }
    let mut mark = if long { mark.max(open) } else { mark.min(open) };
    for k in 0..3 {
        let (a, b) = (path.points[k], path.points[k + 1]);
        if side * (b - a) >= 0.0 {
            // A favourable leg lifts the mark; the price stays above the level along it.
            mark = if long { mark.max(b) } else { mark.min(b) };
            continue;
        }
        let level = level_of(mark);
        if side * (b - level) <= 0.0 {
            // The leg starts on the safe side of the level (the open was checked, and a
            // favourable leg ends at the mark), so it crosses the level inside the leg.
            let t = k as f64 + if b != a { (level - a) / (b - a) } else { 0.0 };
            return Some((t.max(k as f64), level));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_stops_follow_the_path_inside_the_bar() {
        use crate::orders::Trail;
        // Long, mark 100, 5% trail: level 95. Path 100 -> 110 (high first) -> 103 -> 108.
        let path = BarPath::new(100.0, 110.0, 103.0, 108.0, PathPolicy::Optimistic, 1.0);
        // The high lifts the mark to 110: level 104.5, reached on the way down to 103.
        let (t, p) = trailing_trigger(&path, true, 100.0, Trail::Percent(0.05)).unwrap();
        assert_eq!(p, 104.5);
        assert!(t > 1.0 && t < 2.0);
        // Low first: the level is still 95 when the low (103) comes; no trigger.
        let low_first = BarPath::new(100.0, 110.0, 103.0, 108.0, PathPolicy::Pessimistic, 1.0);
        // 100 -> 103 (low) -> 110 -> 108: the close at 108 is above 104.5.
        assert!(trailing_trigger(&low_first, true, 100.0, Trail::Percent(0.05)).is_none());
        // Gap: a mark of 120 puts the level at 114 above the open of 100.
        assert_eq!(
            trailing_trigger(&path, true, 120.0, Trail::Percent(0.05)),
            Some((0.0, 100.0))
        );
        // Short mirror: mark 100, 2-unit trail; path 100 -> 95 -> 101 -> 98: the low moves the
        // level to 97, hit on the way up.
        let short = BarPath::new(100.0, 101.0, 95.0, 98.0, PathPolicy::Optimistic, -1.0);
        let (_, p) = trailing_trigger(&short, false, 100.0, Trail::Amount(2.0)).unwrap();
        assert_eq!(p, 97.0);
    }

    #[test]
    fn path_policy_orders_the_extremes() {
        // open 100, high 110, low 95: the low is nearer.
        let walk = BarPath::new(100.0, 110.0, 95.0, 105.0, PathPolicy::OhlcWalk, 0.0);
        assert_eq!(walk.price_at(1.0), 95.0);
        let pess_long = BarPath::new(100.0, 101.0, 95.0, 100.0, PathPolicy::Pessimistic, 1.0);
        assert_eq!(pess_long.price_at(1.0), 95.0);
        let pess_short = BarPath::new(100.0, 101.0, 95.0, 100.0, PathPolicy::Pessimistic, -1.0);
        assert_eq!(pess_short.price_at(1.0), 101.0);
        let opt_long = BarPath::new(100.0, 101.0, 95.0, 100.0, PathPolicy::Optimistic, 1.0);
        assert_eq!(opt_long.price_at(1.0), 101.0);
    }

    #[test]
    fn stops_trigger_at_level_or_gap_at_open() {
        let path = BarPath::new(100.0, 104.0, 99.0, 103.0, PathPolicy::OhlcWalk, 0.0);
        // low first (1 below open vs 4 above): 100 -> 99 -> 104 -> 103
        let (t, p) = stop_trigger(&path, Side::Buy, 102.0, 0.0).unwrap();
        assert_eq!(p, 102.0);
        assert!(t > 1.0 && t < 2.0);
        let gap = stop_trigger(&path, Side::Buy, 98.0, 0.0).unwrap();
        assert_eq!(gap, (0.0, 100.0));
        assert!(stop_trigger(&path, Side::Sell, 98.0, 0.0).is_none());
    }

    #[test]
    fn limits_fill_at_limit_or_better_and_respect_through() {
        let path = BarPath::new(100.0, 104.0, 99.0, 103.0, PathPolicy::OhlcWalk, 0.0);
        assert_eq!(
            limit_trigger(&path, Side::Buy, 99.0, LimitFill::Touch, 0.0)
                .unwrap()
                .1,
            99.0
        );
        assert!(
            limit_trigger(&path, Side::Buy, 99.0, LimitFill::ThroughAmount(0.5), 0.0).is_none()
        );
        assert_eq!(
            limit_trigger(&path, Side::Buy, 101.0, LimitFill::Touch, 0.0).unwrap(),
            (0.0, 100.0)
        );
        let (t, p) = limit_trigger(&path, Side::Sell, 103.5, LimitFill::Touch, 0.0).unwrap();
        assert_eq!(p, 103.5);
        assert!(t > 1.0 && t < 2.0);
    }
}
