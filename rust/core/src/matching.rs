//! Matching a market order against a bar: the reference price, slippage and the bar-range clamp.

use crate::slippage::SlippageModel;
use crate::types::Side;

/// The price a market order on `side` fills at, given the bar's `reference` price (open or
/// close by execution mode), its `low`/`high` range and the slippage model.
///
/// The slipped price is clamped into `[low, high]`: a fill never lies outside the bar.
#[inline]
pub fn market_fill_price(
    side: Side,
    reference: f64,
    low: f64,
    high: f64,
    slippage: &SlippageModel,
) -> f64 {
    slippage.apply(side, reference).clamp(low, high)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slippage_is_clamped_to_the_bar() {
        let s = SlippageModel::Percent { rate: 0.05 };
        assert_eq!(market_fill_price(Side::Buy, 100.0, 98.0, 102.0, &s), 102.0);
        assert_eq!(market_fill_price(Side::Sell, 100.0, 98.0, 102.0, &s), 98.0);
        let small = SlippageModel::Percent { rate: 0.01 };
        assert_eq!(
            market_fill_price(Side::Buy, 100.0, 98.0, 102.0, &small),
            101.0
        );
    }
}
