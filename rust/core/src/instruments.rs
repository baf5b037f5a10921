//! Instrument specifications: what one unit of an asset is (its class, contract multiplier,
//! price tick, quantity step, margin and expiry), one spec per asset code, built once per run.
//!
//! A run without specs is an equity run: every asset is a share with multiplier 1, no tick, no
//! lot, the account's margin rules and no expiry, and the engine takes none of the paths below.

use crate::error::{BacktestError, Result};
use crate::types::{AssetId, Side, Ts};

/// What kind of instrument an asset is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AssetClass {
    /// A share (the default): bought for its notional.
    #[default]
    Equity,
    /// A futures contract: margined, marked to market (variation margin) at every close,
    /// closed at its expiry.
    Future,
    /// A spot FX pair, bought for its notional like a share.
    Fx,
    /// A crypto perpetual swap: margined and marked to market like a future, with funding
    /// payments and no expiry.
    CryptoPerp,
}

impl AssetClass {
    /// Names in code order, for the Python side.
    pub const NAMES: [&'static str; 4] = ["equity", "future", "fx", "crypto_perp"];

    /// The class named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            AssetClass::Equity,
            AssetClass::Future,
            AssetClass::Fx,
            AssetClass::CryptoPerp,
        ]
        .into_iter()
        .find(|c| Self::NAMES[*c as usize] == name)
    }

    /// Whether positions of this class are margined and settled mark to market: cash moves by
    /// the variation (and the fees), never by the notional.
    #[inline]
    pub fn marked_to_market(self) -> bool {
        matches!(self, AssetClass::Future | AssetClass::CryptoPerp)
    }
}

/// A margin requirement of an instrument.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MarginRule {
    /// An amount per contract (unit of quantity).
    PerContract(f64),
    /// A fraction of the notional (`|quantity| × price × multiplier`).
    Fraction(f64),
}

impl MarginRule {
    /// The requirement of `|quantity|` units at `price` with `multiplier`.
    #[inline]
    pub fn requirement(self, quantity: f64, price: f64, multiplier: f64) -> f64 {
        match self {
            MarginRule::PerContract(amount) => quantity.abs() * amount,
            MarginRule::Fraction(f) => f * quantity.abs() * price * multiplier,
        }
    }
}

/// Nanoseconds in eight hours: the default funding interval of a perpetual.
pub const DEFAULT_FUNDING_INTERVAL: i64 = 8 * 3_600 * 1_000_000_000;

/// One asset's instrument.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InstrumentSpec {
    /// Equity, future, FX or crypto perpetual.
    pub class: AssetClass,
    /// Contract size: notional, PnL and exposure are quantity × price × multiplier.
    pub multiplier: f64,
    /// Price increment: limit, stop and market fill prices are rounded to it (`None`: any).
    pub tick_size: Option<f64>,
    /// Quantity increment: sized orders round toward zero to it and explicit quantities must be
    /// multiples of it (`None`: any quantity the account's share rounding allows).
    pub lot_size: Option<f64>,
    /// Initial margin, checked at every fill that adds exposure; replaces the account's
    /// `initial_margin` for this asset (`None`: the account's rule).
    pub margin_initial: Option<MarginRule>,
    /// Maintenance margin, checked at every close; replaces the account's
    /// `maintenance_margin` for this asset (`None`: the account's rule).
    pub margin_maintenance: Option<MarginRule>,
    /// Futures: the expiry; a position still open at the asset's first bar at or after it is
    /// closed at that bar's close (`contract_expired`).
    pub expiry: Option<Ts>,
    /// A fee per contract replacing the account's commission model for this asset.
    pub commission_per_contract: Option<f64>,
    /// Crypto perpetuals: nanoseconds between funding times (multiples of it since the epoch).
    pub funding_interval: i64,
}

impl Default for InstrumentSpec {
    fn default() -> Self {
        InstrumentSpec {
            class: AssetClass::Equity,
            multiplier: 1.0,
            tick_size: None,
            lot_size: None,
            margin_initial: None,
            margin_maintenance: None,
            expiry: None,
            commission_per_contract: None,
            funding_interval: DEFAULT_FUNDING_INTERVAL,
        }
    }
}

impl InstrumentSpec {
    /// Checks every field of asset `asset`'s spec; errors name `instruments[asset].field`.
    pub fn validate(&self, asset: AssetId) -> Result<()> {
        let field = |name: &str| format!("instruments[{asset}].{name}");
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(BacktestError::config(
                    &field(name),
                    format!("must be finite and > 0, got {v}"),
                ))
            }
        };
        positive("multiplier", self.multiplier)?;
        if let Some(tick) = self.tick_size {
            positive("tick_size", tick)?;
        }
        if let Some(lot) = self.lot_size {
            positive("lot_size", lot)?;
        }
        for (name, rule) in [
            ("margin_initial", self.margin_initial),
            ("margin_maintenance", self.margin_maintenance),
        ] {
            match rule {
                Some(MarginRule::PerContract(v)) => positive(name, v)?,
                Some(MarginRule::Fraction(v)) if !(v.is_finite() && v > 0.0 && v <= 1.0) => {
                    return Err(BacktestError::config(
                        &format!("{}_pct", field(name)),
                        format!("must be in (0, 1], got {v}"),
                    ));
                }
                Some(MarginRule::Fraction(_)) | None => {}
            }
        }
        if let Some(fee) = self.commission_per_contract {
            if !(fee.is_finite() && fee >= 0.0) {
                return Err(BacktestError::config(
                    &field("commission_per_contract"),
                    format!("must be finite and >= 0, got {fee}"),
                ));
            }
        }
        if self.expiry.is_some() && self.class != AssetClass::Future {
            return Err(BacktestError::config(
                &field("expiry"),
                "only futures expire (asset_class 'future')",
            ));
        }
        if self.funding_interval <= 0 {
            return Err(BacktestError::config(
                &field("funding_interval"),
                format!("must be > 0 ns, got {}", self.funding_interval),
            ));
        }
        Ok(())
    }

    /// `price` rounded to the tick against the order's interest: a buy limit down, a sell limit
    /// up (`limit = true`); a buy stop up, a sell stop down (`limit = false`).
    #[inline]
    pub fn round_level(&self, price: f64, side: Side, limit: bool) -> f64 {
        match self.tick_size {
            Some(tick) if price.is_finite() => {
                let down = (side == Side::Buy) == limit;
                round_to(price, tick, down)
            }
            _ => price,
        }
    }

    /// A market-like fill price rounded to the tick against the trader (a buy up, a sell down).
    #[inline]
    pub fn round_fill(&self, price: f64, side: Side) -> f64 {
        match self.tick_size {
            Some(tick) => round_to(price, tick, side == Side::Sell),
            None => price,
        }
    }

    /// `quantity` rounded toward zero to a multiple of the lot size.
    #[inline]
    pub fn round_lot(&self, quantity: f64) -> f64 {
        match self.lot_size {
            Some(lot) => steps(quantity, lot, |n| n.trunc()) * lot,
            None => quantity,
        }
    }

    /// Whether `quantity` is a whole number of lots.
    #[inline]
    pub fn is_lot_multiple(&self, quantity: f64) -> bool {
        match self.lot_size {
            Some(lot) => {
                let n = quantity / lot;
                (n - n.round()).abs() <= 1e-9 * n.abs().max(1.0)
            }
            None => true,
        }
    }
}

/// `x / step` as a count of steps, snapped to the nearest whole count when float rounding left
/// it a hair off (so 1.1 / 0.1 is 11 steps, not 11.000000000000002), else rounded by `round`.
#[inline]
fn steps(x: f64, step: f64, round: impl Fn(f64) -> f64) -> f64 {
    let n = x / step;
    let nearest = n.round();
    if (n - nearest).abs() <= 1e-9 * n.abs().max(1.0) {
        nearest
    } else {
        round(n)
    }
}

/// `price` on the grid of `tick`, down or up.
#[inline]
fn round_to(price: f64, tick: f64, down: bool) -> f64 {
    let n = if down {
        steps(price, tick, f64::floor)
    } else {
        steps(price, tick, f64::ceil)
    };
    n * tick
}

/// The specs of a run's assets, indexed by [`AssetId`], with a summary of which features any of
/// them uses (so the loop skips what no asset needs).
#[derive(Debug, Clone, Default)]
pub struct Instruments {
    specs: Vec<InstrumentSpec>,
    /// Some asset is marked to market.
    pub any_marked: bool,
    /// Some asset has a multiplier other than 1.
    pub any_multiplier: bool,
    /// Some asset has a tick size.
    pub any_tick: bool,
    /// Some asset has a lot size.
    pub any_lot: bool,
    /// Some asset has its own initial or maintenance margin.
    pub any_margin: bool,
    /// Some asset has its own maintenance margin.
    pub any_maintenance: bool,
    /// Some asset expires.
    pub any_expiry: bool,
    /// Some asset is a crypto perpetual.
    pub any_perp: bool,
    /// Some asset has a per-contract commission.
    pub any_commission: bool,
}

impl Instruments {
    /// The specs of `specs.len()` assets, checked.
    pub fn new(specs: Vec<InstrumentSpec>) -> Result<Self> {
        for (asset, spec) in specs.iter().enumerate() {
            spec.validate(asset as AssetId)?;
        }
        let any = |f: fn(&InstrumentSpec) -> bool| specs.iter().any(f);
        Ok(Instruments {
            any_marked: any(|s| s.class.marked_to_market()),
            any_multiplier: any(|s| s.multiplier != 1.0),
            any_tick: any(|s| s.tick_size.is_some()),
            any_lot: any(|s| s.lot_size.is_some()),
            any_margin: any(|s| s.margin_initial.is_some() || s.margin_maintenance.is_some()),
            any_maintenance: any(|s| s.margin_maintenance.is_some()),
            any_expiry: any(|s| s.expiry.is_some()),
            any_perp: any(|s| s.class == AssetClass::CryptoPerp),
            any_commission: any(|s| s.commission_per_contract.is_some()),
            specs,
        })
    }

    /// Whether every asset is a plain share (the specs change nothing).
    pub fn is_plain(&self) -> bool {
        self.specs.iter().all(|s| *s == InstrumentSpec::default())
    }

    /// Number of assets.
    pub fn len(&self) -> usize {
        self.specs.len()
    }

    /// True with no assets.
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// The spec of `asset`.
    #[inline]
    pub fn spec(&self, asset: AssetId) -> &InstrumentSpec {
        &self.specs[asset as usize]
    }

    /// Every spec, by asset code.
    pub fn specs(&self) -> &[InstrumentSpec] {
        &self.specs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn es() -> InstrumentSpec {
        InstrumentSpec {
            class: AssetClass::Future,
            multiplier: 50.0,
            tick_size: Some(0.25),
            lot_size: Some(1.0),
            ..InstrumentSpec::default()
        }
    }

    #[test]
    fn levels_round_against_the_order_and_fills_against_the_trader() {
        let s = es();
        assert_eq!(s.round_level(4500.1, Side::Buy, true), 4500.0);
        assert_eq!(s.round_level(4500.1, Side::Sell, true), 4500.25);
        assert_eq!(s.round_level(4500.1, Side::Buy, false), 4500.25);
        assert_eq!(s.round_level(4500.1, Side::Sell, false), 4500.0);
        assert_eq!(s.round_fill(4500.1, Side::Buy), 4500.25);
        assert_eq!(s.round_fill(4500.1, Side::Sell), 4500.0);
        // A price on the grid stays where it is, float residue or not.
        assert_eq!(s.round_level(4500.25, Side::Buy, false), 4500.25);
        let fx = InstrumentSpec {
            tick_size: Some(0.1),
            ..InstrumentSpec::default()
        };
        assert_eq!(fx.round_fill(1.1, Side::Buy), 1.1);
    }

    #[test]
    fn lots_round_toward_zero() {
        let s = InstrumentSpec {
            lot_size: Some(0.001),
            ..InstrumentSpec::default()
        };
        assert!((s.round_lot(1.23456) - 1.234).abs() < 1e-12);
        assert!((s.round_lot(-1.23456) + 1.234).abs() < 1e-12);
        assert!(s.is_lot_multiple(0.003));
        assert!(!s.is_lot_multiple(0.0035));
    }

    #[test]
    fn bad_fields_are_named() {
        let bad = InstrumentSpec {
            multiplier: 0.0,
            ..es()
        };
        let err = bad.validate(3).unwrap_err().to_string();
        assert!(err.contains("instruments[3].multiplier"), "{err}");
        let bad = InstrumentSpec {
            tick_size: Some(-1.0),
            ..es()
        };
        assert!(bad
            .validate(0)
            .unwrap_err()
            .to_string()
            .contains("tick_size"));
        let bad = InstrumentSpec {
            expiry: Some(1),
            ..InstrumentSpec::default()
        };
        assert!(bad.validate(0).unwrap_err().to_string().contains("expiry"));
    }
}
