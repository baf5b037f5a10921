//! Columnar result builders: fills, trades, equity and rejected orders become Arrow batches.
//!
//! Each recorder appends to plain vectors during the run; [`BacktestOutput`] turns them into
//! `RecordBatch`es without copying (a `Vec` becomes an Arrow buffer in place).

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, UInt32Array, UInt64Array,
    UInt8Array,
};
use arrow_schema::{DataType, Field, Schema};

use crate::records::{Fill, TradeRecord};
use crate::types::{AssetId, OrderId, RejectReason, Side, Ts};

fn batch(fields: Vec<(&str, DataType)>, columns: Vec<ArrayRef>) -> RecordBatch {
    let schema = Schema::new(
        fields
            .into_iter()
            .map(|(name, dtype)| Field::new(name, dtype, false))
            .collect::<Vec<_>>(),
    );
    // Column lengths and types match the schema by construction.
    RecordBatch::try_new(Arc::new(schema), columns).expect("result schema matches its columns")
}

/// Asks the kernel to back a large vector's spare capacity with transparent huge pages: the equity
/// curve of a long run is written once, front to back, and with 4 KiB pages the page faults cost
/// as much as the loop itself. A hint only; nothing changes where THP is off.
fn advise_huge_pages<T>(v: &mut Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let bytes = v.capacity() * std::mem::size_of::<T>();
        if bytes < (4 << 20) {
            return;
        }
        let start = v.as_mut_ptr() as usize;
        let aligned = (start + PAGE - 1) & !(PAGE - 1);
        let len = (start + bytes - aligned) & !(PAGE - 1);
        // SAFETY: [aligned, aligned + len) lies inside the vector's allocation; MADV_HUGEPAGE
        // only changes how the kernel backs those pages, never their contents.
        unsafe {
            libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}

/// Fill records, column by column.
#[derive(Debug, Default, Clone)]
pub struct FillRecorder {
    order_id: Vec<u64>,
    ts: Vec<i64>,
    asset: Vec<u32>,
    side: Vec<u8>,
    quantity: Vec<f64>,
    price: Vec<f64>,
    reference_price: Vec<f64>,
    slippage: Vec<f64>,
    commission: Vec<f64>,
    order_type: Vec<u8>,
    partial: Vec<bool>,
}

impl FillRecorder {
    /// Appends one fill.
    #[inline]
    pub fn push(&mut self, fill: &Fill) {
        self.order_id.push(fill.order_id);
        self.ts.push(fill.ts);
        self.asset.push(fill.asset);
        self.side.push(Side::of(fill.quantity).code());
        self.quantity.push(fill.quantity.abs());
        self.price.push(fill.price);
        self.reference_price.push(fill.reference_price);
        self.slippage.push(fill.slippage);
        self.commission.push(fill.commission);
        self.order_type.push(fill.order_type);
        self.partial.push(fill.partial);
    }

    /// Number of fills so far.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// True before the first fill.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    fn into_batch(self) -> RecordBatch {
        batch(
            vec![
                ("order_id", DataType::UInt64),
                ("ts", DataType::Int64),
                ("asset_id", DataType::UInt32),
                ("side", DataType::UInt8),
                ("quantity", DataType::Float64),
                ("price", DataType::Float64),
                ("reference_price", DataType::Float64),
                ("slippage", DataType::Float64),
                ("commission", DataType::Float64),
                ("order_type", DataType::UInt8),
                ("partial", DataType::Boolean),
            ],
            vec![
                Arc::new(UInt64Array::from(self.order_id)),
                Arc::new(Int64Array::from(self.ts)),
                Arc::new(UInt32Array::from(self.asset)),
                Arc::new(UInt8Array::from(self.side)),
                Arc::new(Float64Array::from(self.quantity)),
                Arc::new(Float64Array::from(self.price)),
                Arc::new(Float64Array::from(self.reference_price)),
                Arc::new(Float64Array::from(self.slippage)),
                Arc::new(Float64Array::from(self.commission)),
                Arc::new(UInt8Array::from(self.order_type)),
                Arc::new(BooleanArray::from(self.partial)),
            ],
        )
    }
}

/// Trade records, column by column.
#[derive(Debug, Default, Clone)]
pub struct TradeRecorder {
    asset: Vec<u32>,
    long: Vec<bool>,
    entry_ts: Vec<i64>,
    exit_ts: Vec<i64>,
    entry_price: Vec<f64>,
    exit_price: Vec<f64>,
    quantity: Vec<f64>,
    gross_pnl: Vec<f64>,
    commission: Vec<f64>,
    slippage: Vec<f64>,
    mfe: Vec<f64>,
    mae: Vec<f64>,
    bars_held: Vec<u64>,
    exit_reason: Vec<u8>,
    open: Vec<bool>,
}

impl TradeRecorder {
    /// Appends one trade.
    pub fn push(&mut self, t: &TradeRecord) {
        self.asset.push(t.asset);
        self.long.push(t.long);
        self.entry_ts.push(t.entry_ts);
        self.exit_ts.push(t.exit_ts);
        self.entry_price.push(t.entry_price);
        self.exit_price.push(t.exit_price);
        self.quantity.push(t.quantity);
        self.gross_pnl.push(t.gross_pnl);
        self.commission.push(t.commission);
        self.slippage.push(t.slippage);
        self.mfe.push(t.mfe);
        self.mae.push(t.mae);
        self.bars_held.push(t.bars_held);
        self.exit_reason.push(t.exit_reason as u8);
        self.open.push(t.open);
    }

    /// Number of trades so far.
    pub fn len(&self) -> usize {
        self.asset.len()
    }

    /// True before the first trade.
    pub fn is_empty(&self) -> bool {
        self.asset.is_empty()
    }

    fn into_batch(self) -> RecordBatch {
        batch(
            vec![
                ("asset_id", DataType::UInt32),
                ("long", DataType::Boolean),
                ("entry_ts", DataType::Int64),
                ("exit_ts", DataType::Int64),
                ("entry_price", DataType::Float64),
                ("exit_price", DataType::Float64),
                ("quantity", DataType::Float64),
                ("gross_pnl", DataType::Float64),
                ("commission", DataType::Float64),
                ("slippage", DataType::Float64),
                ("mfe", DataType::Float64),
                ("mae", DataType::Float64),
                ("bars_held", DataType::UInt64),
                ("exit_reason", DataType::UInt8),
                ("open", DataType::Boolean),
            ],
            vec![
                Arc::new(UInt32Array::from(self.asset)),
                Arc::new(BooleanArray::from(self.long)),
                Arc::new(Int64Array::from(self.entry_ts)),
                Arc::new(Int64Array::from(self.exit_ts)),
                Arc::new(Float64Array::from(self.entry_price)),
                Arc::new(Float64Array::from(self.exit_price)),
                Arc::new(Float64Array::from(self.quantity)),
                Arc::new(Float64Array::from(self.gross_pnl)),
                Arc::new(Float64Array::from(self.commission)),
                Arc::new(Float64Array::from(self.slippage)),
                Arc::new(Float64Array::from(self.mfe)),
                Arc::new(Float64Array::from(self.mae)),
                Arc::new(UInt64Array::from(self.bars_held)),
                Arc::new(UInt8Array::from(self.exit_reason)),
                Arc::new(BooleanArray::from(self.open)),
            ],
        )
    }
}

/// The equity curve: one row per timestamp.
#[derive(Debug, Default, Clone)]
pub struct EquityRecorder {
    ts: Vec<i64>,
    cash: Vec<f64>,
    long_value: Vec<f64>,
    short_value: Vec<f64>,
    /// Sparse financing entries `(ts, borrow fee, interest)`.
    financing: Vec<(Ts, f64, f64)>,
}

impl EquityRecorder {
    /// Reserves room for `additional` more timestamps.
    pub fn reserve(&mut self, additional: usize) {
        self.ts.reserve(additional);
        self.cash.reserve(additional);
        self.long_value.reserve(additional);
        self.short_value.reserve(additional);
        advise_huge_pages(&mut self.ts);
        advise_huge_pages(&mut self.cash);
        advise_huge_pages(&mut self.long_value);
        advise_huge_pages(&mut self.short_value);
    }

    /// Appends one timestamp's account state.
    #[inline]
    pub fn push(&mut self, ts: Ts, cash: f64, long_value: f64, short_value: f64) {
        self.ts.push(ts);
        self.cash.push(cash);
        self.long_value.push(long_value);
        self.short_value.push(short_value);
    }

    /// Records the financing of the timestamp `ts` (about to be pushed): borrow fee charged
    /// (>= 0) and interest (signed: + earned on cash, - paid on a debit balance).
    #[inline]
    pub fn push_financing(&mut self, ts: Ts, borrow_fee: f64, interest: f64) {
        self.financing.push((ts, borrow_fee, interest));
    }

    /// The financing records: one row per timestamp that accrued any, so that runs without
    /// financing (most) write nothing per bar.
    fn financing_batch(&self) -> RecordBatch {
        batch(
            vec![
                ("ts", DataType::Int64),
                ("borrow_fee", DataType::Float64),
                ("interest", DataType::Float64),
            ],
            vec![
                Arc::new(Int64Array::from_iter_values(
                    self.financing.iter().map(|f| f.0),
                )),
                Arc::new(Float64Array::from_iter_values(
                    self.financing.iter().map(|f| f.1),
                )),
                Arc::new(Float64Array::from_iter_values(
                    self.financing.iter().map(|f| f.2),
                )),
            ],
        )
    }

    /// Number of timestamps recorded.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// True before the first timestamp.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    fn into_batch(self) -> RecordBatch {
        let positions: Vec<f64> = self
            .long_value
            .iter()
            .zip(&self.short_value)
            .map(|(l, s)| l + s)
            .collect();
        let equity: Vec<f64> = self
            .cash
            .iter()
            .zip(&positions)
            .map(|(c, p)| c + p)
            .collect();
        batch(
            vec![
                ("ts", DataType::Int64),
                ("cash", DataType::Float64),
                ("long_value", DataType::Float64),
                ("short_value", DataType::Float64),
                ("positions_value", DataType::Float64),
                ("equity", DataType::Float64),
            ],
            vec![
                Arc::new(Int64Array::from(self.ts)),
                Arc::new(Float64Array::from(self.cash)),
                Arc::new(Float64Array::from(self.long_value)),
                Arc::new(Float64Array::from(self.short_value)),
                Arc::new(Float64Array::from(positions)),
                Arc::new(Float64Array::from(equity)),
            ],
        )
    }
}

/// Orders that did not fill, with the reason.
#[derive(Debug, Default, Clone)]
pub struct RejectionRecorder {
    order_id: Vec<u64>,
    ts: Vec<i64>,
    asset: Vec<u32>,
    quantity: Vec<f64>,
    reason: Vec<u8>,
}

impl RejectionRecorder {
    /// Appends one rejected order (`order_id` 0 when no id was assigned).
    pub fn push(
        &mut self,
        order_id: OrderId,
        ts: Ts,
        asset: AssetId,
        quantity: f64,
        reason: RejectReason,
    ) {
        self.order_id.push(order_id);
        self.ts.push(ts);
        self.asset.push(asset);
        self.quantity.push(quantity);
        self.reason.push(reason as u8);
    }

    fn into_batch(self) -> RecordBatch {
        batch(
            vec![
                ("order_id", DataType::UInt64),
                ("ts", DataType::Int64),
                ("asset_id", DataType::UInt32),
                ("quantity", DataType::Float64),
                ("reason", DataType::UInt8),
            ],
            vec![
                Arc::new(UInt64Array::from(self.order_id)),
                Arc::new(Int64Array::from(self.ts)),
                Arc::new(UInt32Array::from(self.asset)),
                Arc::new(Float64Array::from(self.quantity)),
                Arc::new(UInt8Array::from(self.reason)),
            ],
        )
    }
}

/// Everything a run produces, as Arrow batches.
#[derive(Debug, Clone)]
pub struct BacktestOutput {
    /// Every execution.
    pub fills: RecordBatch,
    /// Round trips, closed and still open.
    pub trades: RecordBatch,
    /// One row per timestamp.
    pub equity: RecordBatch,
    /// Orders that never filled.
    pub rejections: RecordBatch,
    /// Borrow fees and interest, one row per timestamp that accrued any.
    pub financing: RecordBatch,
}

impl BacktestOutput {
    /// Finishes the recorders into batches.
    pub fn from_recorders(
        fills: FillRecorder,
        trades: TradeRecorder,
        equity: EquityRecorder,
        rejections: RejectionRecorder,
    ) -> Self {
        BacktestOutput {
            fills: fills.into_batch(),
            trades: trades.into_batch(),
            financing: equity.financing_batch(),
            equity: equity.into_batch(),
            rejections: rejections.into_batch(),
        }
    }
}
