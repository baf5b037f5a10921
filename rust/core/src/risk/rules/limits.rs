//! Pre-trade limits on the opening part of new orders: position size, position count,
//! exposure, volatility-scaled sizing and a plain size scale.

use super::{positive, FeatureColumn};
use crate::error::{BacktestError, Result};
use crate::feed::MarketData;
use crate::risk::context::{OrderCheck, RiskEnv};
use crate::risk::decision::RiskDecision;
use crate::risk::rule::RiskRule;

/// The verdict for an opening of `|opening|` shares when `room` shares are allowed.
#[inline]
fn fit(opening: f64, room: f64) -> RiskDecision {
    if room.is_nan() || room <= 0.0 {
        RiskDecision::Reject
    } else if opening.abs() > room {
        RiskDecision::Resize(room)
    } else {
        RiskDecision::Allow
    }
}

/// A cap on the size of one position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PositionLimit {
    /// Shares.
    Shares(f64),
    /// Market value at the order's price.
    Notional(f64),
    /// A fraction of equity (0.1 = 10%).
    EquityFraction(f64),
}

/// Caps every position's size: an order that would take it beyond the limit is cut to fit,
/// and rejected (`risk_limit`) when there is no room at all.
#[derive(Debug, Clone)]
pub struct MaxPositionSize {
    limit: PositionLimit,
}

impl MaxPositionSize {
    /// A cap of `limit` (positive).
    pub fn new(limit: PositionLimit) -> Result<Self> {
        let (field, v) = match limit {
            PositionLimit::Shares(v) => ("shares", v),
            PositionLimit::Notional(v) => ("notional", v),
            PositionLimit::EquityFraction(v) => ("pct_equity", v),
        };
        positive("max_position_size", field, v)?;
        Ok(MaxPositionSize { limit })
    }
}

impl RiskRule for MaxPositionSize {
    fn name(&self) -> &str {
        "max_position_size"
    }
    fn checks_orders(&self) -> bool {
        true
    }
    fn check_order(&mut self, env: &RiskEnv, order: &OrderCheck) -> Result<RiskDecision> {
        let max_shares = match self.limit {
            PositionLimit::Shares(s) => s,
            PositionLimit::Notional(n) => n / order.unit_value,
            PositionLimit::EquityFraction(f) => f * env.portfolio.equity / order.unit_value,
        };
        Ok(fit(order.opening, max_shares - order.position.abs()))
    }
}

/// At most `max` positions open at once: an order that would open another is rejected.
#[derive(Debug, Clone)]
pub struct MaxPositions {
    max: usize,
}

impl MaxPositions {
    /// `max` >= 1.
    pub fn new(max: usize) -> Result<Self> {
        if max == 0 {
            return Err(BacktestError::risk(
                "max_positions.max",
                "must be >= 1, got 0",
            ));
        }
        Ok(MaxPositions { max })
    }
}

impl RiskRule for MaxPositions {
    fn name(&self) -> &str {
        "max_positions"
    }
    fn checks_orders(&self) -> bool {
        true
    }
    fn check_order(&mut self, _env: &RiskEnv, order: &OrderCheck) -> Result<RiskDecision> {
        let opens_new = order.position == 0.0;
        Ok(if opens_new && order.open_positions >= self.max {
            RiskDecision::Reject
        } else {
            RiskDecision::Allow
        })
    }
}

/// Gross exposure (sum of |market values|) at most `max` × equity.
#[derive(Debug, Clone)]
pub struct MaxGrossExposure {
    max: f64,
}

impl MaxGrossExposure {
    /// `max` > 0 (1.0 = 100% of equity).
    pub fn new(max: f64) -> Result<Self> {
        positive("max_gross_exposure", "max", max)?;
        Ok(MaxGrossExposure { max })
    }
}

impl RiskRule for MaxGrossExposure {
    fn name(&self) -> &str {
        "max_gross_exposure"
    }
    fn checks_orders(&self) -> bool {
        true
    }
    fn check_order(&mut self, env: &RiskEnv, order: &OrderCheck) -> Result<RiskDecision> {
        let room = (self.max * env.portfolio.equity - order.gross_exposure) / order.unit_value;
        Ok(fit(order.opening, room))
    }
}

/// |Net exposure| (sum of signed market values) at most `max` × equity. Orders that bring net
/// exposure back toward zero are never cut.
#[derive(Debug, Clone)]
pub struct MaxNetExposure {
    max: f64,
}

impl MaxNetExposure {
    /// `max` > 0.
    pub fn new(max: f64) -> Result<Self> {
        positive("max_net_exposure", "max", max)?;
        Ok(MaxNetExposure { max })
    }
}

impl RiskRule for MaxNetExposure {
    fn name(&self) -> &str {
        "max_net_exposure"
    }
    fn checks_orders(&self) -> bool {
        true
    }
    fn check_order(&mut self, env: &RiskEnv, order: &OrderCheck) -> Result<RiskDecision> {
        let limit = self.max * env.portfolio.equity;
        let net = order.net_exposure;
        if order.opening * net < 0.0 {
            // Toward zero: allowed up to the limit on the other side.
            let room = (limit + net.abs()) / order.unit_value;
            return Ok(fit(order.opening, room));
        }
        let room = (limit - net.abs()) / order.unit_value;
        Ok(fit(order.opening, room))
    }
}

/// Sizes entries so each position risks `risk_fraction` of equity over `multiple` × a
/// volatility feature: shares = risk_fraction × equity / (multiple × volatility), the volatility
/// in price units (an ATR) or, with `returns`, as a fraction of the price. The order's opening
/// part is set to reach that size (up or down); an asset without a finite, positive volatility
/// at this bar is rejected (`risk_limit`).
#[derive(Debug, Clone)]
pub struct VolatilityScaledSizing {
    feature: FeatureColumn,
    risk_fraction: f64,
    multiple: f64,
    returns: bool,
}

impl VolatilityScaledSizing {
    /// See the type's documentation.
    pub fn new(
        feature: impl Into<String>,
        risk_fraction: f64,
        multiple: f64,
        returns: bool,
    ) -> Result<Self> {
        let rule = "volatility_scaled_sizing";
        positive(rule, "risk_fraction", risk_fraction)?;
        positive(rule, "multiple", multiple)?;
        Ok(VolatilityScaledSizing {
            feature: FeatureColumn::new(feature),
            risk_fraction,
            multiple,
            returns,
        })
    }
}

impl RiskRule for VolatilityScaledSizing {
    fn name(&self) -> &str {
        "volatility_scaled_sizing"
    }
    fn bind(&mut self, data: &MarketData) -> Result<()> {
        self.feature.bind("volatility_scaled_sizing", data)
    }
    fn checks_orders(&self) -> bool {
        true
    }
    fn check_order(&mut self, env: &RiskEnv, order: &OrderCheck) -> Result<RiskDecision> {
        let vol = env.feature(self.feature.column(), order.row);
        // A unit's risk in base: a return volatility times its value, or a price volatility
        // (in the asset's currency, per unit of price) scaled like the price.
        let scale = order.unit_value / order.price;
        let per_share = self.multiple
            * if self.returns {
                vol * order.unit_value
            } else {
                vol * scale
            };
        if !(per_share.is_finite() && per_share > 0.0) {
            return Ok(RiskDecision::Reject);
        }
        let target = self.risk_fraction * env.portfolio.equity / per_share;
        let room = target - order.position.abs();
        Ok(if room > 0.0 {
            RiskDecision::Resize(room)
        } else {
            RiskDecision::Reject
        })
    }
}

/// Multiplies the opening part of every order by `factor` (in a [`super::RegimeRule`]: halve
/// sizes when volatility is high).
#[derive(Debug, Clone)]
pub struct ScaleSize {
    factor: f64,
}

impl ScaleSize {
    /// `factor` > 0.
    pub fn new(factor: f64) -> Result<Self> {
        positive("scale_size", "factor", factor)?;
        Ok(ScaleSize { factor })
    }
}

impl RiskRule for ScaleSize {
    fn name(&self) -> &str {
        "scale_size"
    }
    fn checks_orders(&self) -> bool {
        true
    }
    fn check_order(&mut self, _env: &RiskEnv, order: &OrderCheck) -> Result<RiskDecision> {
        Ok(RiskDecision::Resize(order.opening.abs() * self.factor))
    }
}
