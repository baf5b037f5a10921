//! Columnar result builders: fills, trades, equity, financing, rejected orders and the order
//! journal (every order and its status changes) become Arrow batches.
//!
//! Each recorder is declared once with the `recorder!` macro: one line per column gives its name (the
//! Arrow column name), its element type and how a pushed row fills it. During the run a recorder
//! appends to plain vectors; [`BacktestOutput`] turns them into `RecordBatch`es without copying
//! (a `Vec` becomes an Arrow buffer in place).

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, UInt32Array, UInt64Array,
    UInt8Array,
};
use arrow_schema::{Field, Schema};

use crate::events::{JournalStatus, OrderOrigin};
use crate::orders::Order;
use crate::records::{Fill, TradeRecord};
use crate::types::{AssetId, OrderId, RejectReason, Side, Ts};

/// An element type a recorder column can hold: a `Vec` of it becomes an Arrow array in place.
trait ColumnType: Sized {
    /// The Arrow array over `values`.
    fn array(values: Vec<Self>) -> ArrayRef;
}

macro_rules! column_type {
    ($($ty:ty => $array:ty),* $(,)?) => {
        $(impl ColumnType for $ty {
            fn array(values: Vec<Self>) -> ArrayRef {
                Arc::new(<$array>::from(values))
            }
        })*
    };
}

column_type!(
    u64 => UInt64Array,
    i64 => Int64Array,
    u32 => UInt32Array,
    u8 => UInt8Array,
    f64 => Float64Array,
    bool => BooleanArray,
);

/// Declares a columnar recorder: a struct of one `Vec` per column, its `push` (the row's
/// arguments and, per column, the value it appends), `len`, `is_empty`, `reserve` and the named
/// Arrow columns, in declaration order.
macro_rules! recorder {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(#[$push_meta:meta])*
            fn push($($arg:ident: $arg_ty:ty),* $(,)?);
            $($column:ident: $ty:ty = $value:expr),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Default, Clone)]
        pub struct $name {
            $($column: Vec<$ty>,)+
        }

        impl $name {
            $(#[$push_meta])*
            #[inline]
            pub fn push(&mut self, $($arg: $arg_ty),*) {
                $(self.$column.push($value);)+
            }

            /// Number of rows so far.
            pub fn len(&self) -> usize {
                [$(self.$column.len()),+][0]
            }

            /// True before the first row.
            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }

            /// Reserves room for `additional` more rows (large columns are advised huge pages).
            pub fn reserve(&mut self, additional: usize) {
                $(
                    self.$column.reserve(additional);
                    advise_huge_pages(&mut self.$column);
                )+
            }

            /// The named Arrow columns, in declaration order.
            fn into_columns(self) -> Vec<(&'static str, ArrayRef)> {
                vec![$((stringify!($column), ColumnType::array(self.$column))),+]
            }
        }
    };
}

recorder! {
    /// Fill records, column by column.
    pub struct FillRecorder {
        /// Appends one fill.
        fn push(fill: &Fill);
        order_id: u64 = fill.order_id,
        ts: i64 = fill.ts,
        asset_id: u32 = fill.asset,
        side: u8 = Side::of(fill.quantity).code(),
        quantity: f64 = fill.quantity.abs(),
        price: f64 = fill.price,
        reference_price: f64 = fill.reference_price,
        slippage: f64 = fill.slippage,
        commission: f64 = fill.commission,
        multiplier: f64 = fill.multiplier,
        order_type: u8 = fill.order_type,
        partial: bool = fill.partial,
    }
}

recorder! {
    /// Trade records, column by column.
    pub struct TradeRecorder {
        /// Appends one trade.
        fn push(t: &TradeRecord);
        asset_id: u32 = t.asset,
        long: bool = t.long,
        entry_ts: i64 = t.entry_ts,
        exit_ts: i64 = t.exit_ts,
        entry_price: f64 = t.entry_price,
        exit_price: f64 = t.exit_price,
        quantity: f64 = t.quantity,
        multiplier: f64 = t.multiplier,
        gross_pnl: f64 = t.gross_pnl,
        commission: f64 = t.commission,
        slippage: f64 = t.slippage,
        funding: f64 = t.funding,
        gross_pnl_local: f64 = t.gross_pnl_local,
        net_pnl_local: f64 = t.net_pnl_local,
        mfe: f64 = t.mfe,
        mae: f64 = t.mae,
        bars_held: u64 = t.bars_held,
        exit_reason: u8 = t.exit_reason as u8,
        open: bool = t.open,
    }
}

/// The account state of each timestamp: the equity curve, written by [`EquityWriter`].
/// `positions_value` (long + short) is derived when the table is built: with no short side
/// (most runs) it is the `long_value` column itself, not a copy.
#[derive(Debug, Default, Clone)]
pub struct EquityRecorder {
    ts: Vec<i64>,
    cash: Vec<f64>,
    long_value: Vec<f64>,
    short_value: Vec<f64>,
    equity: Vec<f64>,
}

impl EquityRecorder {
    /// Number of rows so far.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// True before the first row.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// Reserves room for `additional` more rows (large columns are advised huge pages).
    pub fn reserve(&mut self, additional: usize) {
        self.ts.reserve(additional);
        advise_huge_pages(&mut self.ts);
        for column in [
            &mut self.cash,
            &mut self.long_value,
            &mut self.short_value,
            &mut self.equity,
        ] {
            column.reserve(additional);
            advise_huge_pages(column);
        }
    }

    /// Row `i`'s `positions_value` (long + short), as the table holds it.
    pub fn positions_value(&self, i: usize) -> f64 {
        self.long_value[i] + self.short_value[i]
    }

    /// The named Arrow columns. `positions_value` is `long_value + short_value` row by row:
    /// when every short value is +0.0 that sum is the long value itself unless the long value
    /// is -0.0, so the column is then `long_value`'s own buffer.
    fn into_columns(self) -> Vec<(&'static str, ArrayRef)> {
        let no_short = self.short_value.iter().all(|s| s.to_bits() == 0);
        let positions = if no_short && !self.long_value.iter().any(|l| l.to_bits() == NEGATIVE_ZERO)
        {
            None
        } else {
            let sums = self.long_value.iter().zip(&self.short_value);
            Some(ColumnType::array(
                sums.map(|(l, s)| l + s).collect::<Vec<f64>>(),
            ))
        };
        let long: ArrayRef = ColumnType::array(self.long_value);
        vec![
            ("ts", ColumnType::array(self.ts)),
            ("cash", ColumnType::array(self.cash)),
            ("long_value", long.clone()),
            ("short_value", ColumnType::array(self.short_value)),
            ("positions_value", positions.unwrap_or(long)),
            ("equity", ColumnType::array(self.equity)),
        ]
    }
}

/// The bits of -0.0.
const NEGATIVE_ZERO: u64 = 0x8000_0000_0000_0000;

recorder! {
    /// Notional exposure per timestamp, only in runs with an asset marked to market (futures,
    /// perpetuals), whose marked value (unsettled PnL) is not its exposure: the long and
    /// short notional in base. Other runs write nothing (exposure = the marked values).
    pub struct ExposureRecorder {
        /// Appends one timestamp's exposure.
        fn push(long: f64, short: f64);
        long_exposure: f64 = long,
        short_exposure: f64 = short,
    }
}

recorder! {
    /// Financing, sparse: one row per timestamp that accrued any, so that runs without
    /// financing (most) write nothing per bar.
    pub struct FinancingRecorder {
        /// Records the financing of timestamp `ts`: borrow fee charged (>= 0), interest
        /// (signed: + earned on cash, - paid on a debit balance), dividends (signed: +
        /// received on longs, - paid on shorts) and perpetuals' funding (signed: + received);
        /// capital flows are added with [`FinancingRecorder::add_flow`].
        fn push(ts: Ts, borrow_fee: f64, interest: f64, dividend: f64, funding: f64);
        ts: i64 = ts,
        borrow_fee: f64 = borrow_fee,
        interest: f64 = interest,
        dividend: f64 = dividend,
        funding: f64 = funding,
        flow: f64 = 0.0,
        dividend_paid: f64 = 0.0,
    }
}

impl FinancingRecorder {
    /// Adds dividends to timestamp `ts`'s row (appended when it has none yet): `received` on
    /// longs (>= 0) and `paid` on shorts (>= 0); the `dividend` column holds their net.
    pub fn add_dividend(&mut self, ts: Ts, received: f64, paid: f64) {
        if self.ts.last() != Some(&ts) {
            self.push(ts, 0.0, 0.0, 0.0, 0.0);
        }
        if let Some(total) = self.dividend.last_mut() {
            *total += received - paid;
        }
        if let Some(total) = self.dividend_paid.last_mut() {
            *total += paid;
        }
    }

    /// Adds `amount` of funding (signed: + received) to timestamp `ts`'s row (appended when it
    /// has none yet).
    pub fn add_funding(&mut self, ts: Ts, amount: f64) {
        match self.ts.last() {
            Some(&last) if last == ts => {
                if let Some(total) = self.funding.last_mut() {
                    *total += amount;
                }
            }
            _ => self.push(ts, 0.0, 0.0, 0.0, amount),
        }
    }

    /// Records timestamp `ts`'s capital flow (signed: + deposit, - withdrawal), on its row
    /// (appended when it has none yet: flows come after the timestamp's financing and
    /// dividends).
    pub fn add_flow(&mut self, ts: Ts, amount: f64) {
        if self.ts.last() != Some(&ts) {
            self.push(ts, 0.0, 0.0, 0.0, 0.0);
        }
        if let Some(total) = self.flow.last_mut() {
            *total += amount;
        }
    }
}

recorder! {
    /// Cash per currency, sparse: a row for a currency at the end of each timestamp where its
    /// balance or rate changed (runs with one currency write none). The cash of a currency at
    /// any time is its last row at or before it.
    pub struct CashRecorder {
        /// Records currency `currency`'s `cash` (in it) and `rate` (base units per unit) at
        /// the end of `ts`, with what this close swept to base (`converted`, in the currency)
        /// and the fee charged for it (in base).
        fn push(ts: Ts, currency: u32, cash: f64, rate: f64, converted: f64, fx_fee: f64);
        ts: i64 = ts,
        currency: u32 = currency,
        cash: f64 = cash,
        rate: f64 = rate,
        cash_in_base: f64 = if cash == 0.0 { 0.0 } else { cash * rate },
        converted: f64 = converted,
        fx_fee: f64 = fx_fee,
    }
}

recorder! {
    /// The splits applied to held positions: the position before and after (before any cash
    /// in lieu), so that positions can be rebuilt from the fills and these rows.
    pub struct SplitRecorder {
        /// Records the split of `asset`'s position at `ts` by `ratio`.
        fn push(ts: Ts, asset: AssetId, ratio: f64, before: f64, after: f64);
        ts: i64 = ts,
        asset_id: u32 = asset,
        split_ratio: f64 = ratio,
        quantity_before: f64 = before,
        quantity_after: f64 = after,
    }
}

recorder! {
    /// The PnL of positions held while their asset was not a member of the point-in-time
    /// universe: one row per (timestamp, asset) that earned any (a run without a universe
    /// writes none).
    pub struct NonMemberPnlRecorder {
        /// Records `asset`'s PnL over timestamp `ts` (marked value change plus the cash its
        /// fills and dividends moved).
        fn push(ts: Ts, asset: AssetId, pnl: f64);
        ts: i64 = ts,
        asset_id: u32 = asset,
        pnl: f64 = pnl,
    }
}

recorder! {
    /// Orders that did not fill, with the reason.
    pub struct RejectionRecorder {
        /// Appends one rejected order (`order_id` 0 when no id was assigned).
        fn push(order_id: OrderId, ts: Ts, asset: AssetId, quantity: f64, reason: RejectReason);
        order_id: u64 = order_id,
        ts: i64 = ts,
        asset_id: u32 = asset,
        quantity: f64 = quantity,
        reason: u8 = reason as u8,
    }
}

recorder! {
    /// The order journal's orders: one row per order, written when it is accepted into the
    /// book (or booked at once by the engine, or refused before it was accepted).
    pub struct OrderRecorder {
        /// Appends `order` as created by `origin`.
        fn push(order: &Order, origin: OrderOrigin);
        order_id: u64 = order.id,
        ts: i64 = order.created,
        asset_id: u32 = order.asset,
        order_type: u8 = order.kind.code(),
        quantity: f64 = order.quantity,
        limit: f64 = order.kind.limit_price(),
        stop: f64 = order.kind.stop_price(),
        trail_amount: f64 = order.kind.trail_distance().0,
        trail_percent: f64 = order.kind.trail_distance().1,
        tif: u8 = order.tif.code(),
        parent_id: u64 = order.parent,
        oco_id: u64 = order.oco,
        origin: u8 = origin as u8,
        exit_reason: u8 = order.reason as u8,
    }
}

/// One status change of one order, as the journal records it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JournalEvent {
    /// The order.
    pub order_id: OrderId,
    /// When.
    pub ts: Ts,
    /// The new status.
    pub status: JournalStatus,
    /// Signed shares filled (fills), cut (resized, rejected), cancelled or expired by it; 0
    /// for accepted, modified and modify_rejected.
    pub quantity: f64,
    /// Signed shares still open after it (0 once terminal).
    pub remaining: f64,
    /// The fill price (fills), else NaN.
    pub price: f64,
    /// The order's limit and stop after a modification, else NaN.
    pub limit: f64,
    /// See `limit`.
    pub stop: f64,
    /// Why, for resizes, rejections and expiries.
    pub reason: Option<RejectReason>,
}

impl JournalEvent {
    /// A status change without a fill or modification.
    pub fn status(
        order_id: OrderId,
        ts: Ts,
        status: JournalStatus,
        quantity: f64,
        remaining: f64,
    ) -> Self {
        JournalEvent {
            order_id,
            ts,
            status,
            quantity,
            remaining,
            price: f64::NAN,
            limit: f64::NAN,
            stop: f64::NAN,
            reason: None,
        }
    }
}

/// The `reason` code of an event without one.
pub const NO_REASON: u8 = u8::MAX;

recorder! {
    /// The order journal's events: every status change of every order, in the order they
    /// happened.
    pub struct OrderEventRecorder {
        /// Appends one event.
        fn push(e: &JournalEvent);
        order_id: u64 = e.order_id,
        ts: i64 = e.ts,
        status: u8 = e.status as u8,
        quantity: f64 = e.quantity,
        remaining: f64 = e.remaining,
        price: f64 = e.price,
        limit: f64 = e.limit,
        stop: f64 = e.stop,
        reason: u8 = e.reason.map_or(NO_REASON, |r| r as u8),
    }
}

/// The equity curve's rows of one chunk, written into capacity reserved for all of its
/// timestamps: one capacity test a row for the five columns instead of `Vec::push`'s one per
/// column. [`EquityWriter::finish`] gives the recorder back with the rows written.
#[derive(Debug)]
pub struct EquityWriter {
    rec: EquityRecorder,
    ts: *mut i64,
    cash: *mut f64,
    long_value: *mut f64,
    short_value: *mut f64,
    equity: *mut f64,
    len: usize,
    cap: usize,
}

impl EquityWriter {
    /// Takes `rec` over, with room for `rows` more rows.
    pub fn new(mut rec: EquityRecorder, rows: usize) -> Self {
        rec.reserve(rows);
        let len = rec.len();
        let cap = rec
            .ts
            .capacity()
            .min(rec.cash.capacity())
            .min(rec.long_value.capacity())
            .min(rec.short_value.capacity())
            .min(rec.equity.capacity());
        EquityWriter {
            ts: rec.ts.as_mut_ptr(),
            cash: rec.cash.as_mut_ptr(),
            long_value: rec.long_value.as_mut_ptr(),
            short_value: rec.short_value.as_mut_ptr(),
            equity: rec.equity.as_mut_ptr(),
            rec,
            len,
            cap,
        }
    }

    /// Appends one timestamp's account state.
    #[inline]
    pub fn push(&mut self, ts: Ts, cash: f64, long_value: f64, short_value: f64) {
        if self.len == self.cap {
            self.grow();
        }
        let i = self.len;
        // SAFETY: `i` is below every column's capacity, and the columns are not touched
        // otherwise until `finish` sets their length to the rows written.
        unsafe {
            self.ts.add(i).write(ts);
            self.cash.add(i).write(cash);
            self.long_value.add(i).write(long_value);
            self.short_value.add(i).write(short_value);
            self.equity.add(i).write(cash + (long_value + short_value));
        }
        self.len = i + 1;
    }

    /// More room than was asked for (never needed when the timestamps were counted right).
    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        let rec = Self::finish_at(std::mem::take(&mut self.rec), self.len);
        *self = EquityWriter::new(rec, self.len.max(1));
    }

    /// The recorder with the rows written.
    pub fn finish(self) -> EquityRecorder {
        Self::finish_at(self.rec, self.len)
    }

    /// `rec` with the length of its columns set to `len`, the rows written.
    fn finish_at(mut rec: EquityRecorder, len: usize) -> EquityRecorder {
        // SAFETY: rows `..len` of every column were written by `push` (or before) and
        // `len <= cap <= capacity`.
        unsafe {
            rec.ts.set_len(len);
            rec.cash.set_len(len);
            rec.long_value.set_len(len);
            rec.short_value.set_len(len);
            rec.equity.set_len(len);
        }
        rec
    }
}

impl EquityRecorder {
    /// The equity curve's columns, and `exposure`'s when it has rows.
    fn into_equity_columns(self, exposure: ExposureRecorder) -> Vec<(&'static str, ArrayRef)> {
        let mut columns = self.into_columns();
        if !exposure.is_empty() {
            columns.extend(exposure.into_columns());
        }
        columns
    }
}

/// A batch of non-nullable `columns`, its schema read off the arrays.
fn batch(columns: Vec<(&'static str, ArrayRef)>) -> RecordBatch {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, array)| Field::new(*name, array.data_type().clone(), false))
        .collect();
    let arrays = columns.into_iter().map(|(_, array)| array).collect();
    // Column lengths and types match the schema by construction.
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .expect("result schema matches its columns")
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

/// Everything a run records, one recorder per output table.
#[derive(Debug, Default, Clone)]
pub struct Recorders {
    /// Every execution.
    pub fills: FillRecorder,
    /// Round trips.
    pub trades: TradeRecorder,
    /// One row per timestamp.
    pub equity: EquityRecorder,
    /// Notional exposure per timestamp (runs with assets marked to market only).
    pub exposure: ExposureRecorder,
    /// Borrow fees, interest and dividends, one row per timestamp that had any.
    pub financing: FinancingRecorder,
    /// Splits applied to held positions.
    pub splits: SplitRecorder,
    /// Cash per currency (several currencies only), sparse.
    pub cash: CashRecorder,
    /// Orders that never filled.
    pub rejections: RejectionRecorder,
    /// Every order, one row each (the order journal).
    pub orders: OrderRecorder,
    /// Every status change of every order (the order journal).
    pub order_events: OrderEventRecorder,
    /// PnL of positions held in non-members of the universe.
    pub non_member_pnl: NonMemberPnlRecorder,
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
    /// Borrow fees, interest and dividends, one row per timestamp that had any.
    pub financing: RecordBatch,
    /// Splits applied to held positions (`ts, asset_id, split_ratio, quantity_before,
    /// quantity_after`).
    pub splits: RecordBatch,
    /// Cash per currency, sparse (`ts, currency, cash, rate, cash_in_base, converted,
    /// fx_fee`); empty with one currency.
    pub cash: RecordBatch,
    /// Every order of the run, one row each, in the order they were recorded.
    pub orders: RecordBatch,
    /// Every status change of every order, in the order they happened.
    pub order_events: RecordBatch,
    /// The PnL of positions held while their asset was not a universe member (`ts, asset_id,
    /// pnl`).
    pub non_member_pnl: RecordBatch,
}

impl BacktestOutput {
    /// Finishes the recorders into batches.
    pub fn from_recorders(recorders: Recorders) -> Self {
        BacktestOutput {
            fills: batch(recorders.fills.into_columns()),
            trades: batch(recorders.trades.into_columns()),
            equity: batch(recorders.equity.into_equity_columns(recorders.exposure)),
            rejections: batch(recorders.rejections.into_columns()),
            financing: batch(recorders.financing.into_columns()),
            splits: batch(recorders.splits.into_columns()),
            cash: batch(recorders.cash.into_columns()),
            orders: batch(recorders.orders.into_columns()),
            order_events: batch(recorders.order_events.into_columns()),
            non_member_pnl: batch(recorders.non_member_pnl.into_columns()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve_columns(rec: EquityRecorder) -> Vec<(&'static str, Vec<f64>)> {
        rec.into_columns()
            .into_iter()
            .filter_map(|(name, array)| {
                let values = array.as_any().downcast_ref::<Float64Array>()?;
                Some((name, values.values().to_vec()))
            })
            .collect()
    }

    #[test]
    fn a_long_only_curve_shares_long_value_as_positions_value() {
        let mut writer = EquityWriter::new(EquityRecorder::default(), 3);
        for (i, long) in [0.0, 5.0, 7.5].into_iter().enumerate() {
            writer.push(i as i64, 100.0, long, 0.0);
        }
        let rec = writer.finish();
        let columns = rec.clone().into_columns();
        let long = columns[2].1.to_data();
        let positions = columns[4].1.to_data();
        // The same buffer, not a copy.
        assert_eq!(long.buffers()[0].as_ptr(), positions.buffers()[0].as_ptr());
        let values = curve_columns(rec);
        assert_eq!(values[2], ("short_value", vec![0.0; 3]));
        assert_eq!(values[3], ("positions_value", vec![0.0, 5.0, 7.5]));
        assert_eq!(values[4], ("equity", vec![100.0, 105.0, 107.5]));
    }

    #[test]
    fn a_short_side_is_summed_across_chunks() {
        let mut writer = EquityWriter::new(EquityRecorder::default(), 2);
        writer.push(0, 10.0, 1.0, 0.0);
        writer.push(1, 10.0, 1.0, 0.0);
        let mut writer = EquityWriter::new(writer.finish(), 3);
        writer.push(2, 10.0, 1.0, -2.0);
        writer.push(3, 10.0, 0.0, 0.0);
        let mut writer = EquityWriter::new(writer.finish(), 1);
        writer.push(4, 10.0, 2.0, -0.5);
        let values = curve_columns(writer.finish());
        assert_eq!(values[2], ("short_value", vec![0.0, 0.0, -2.0, 0.0, -0.5]));
        assert_eq!(
            values[3],
            ("positions_value", vec![1.0, 1.0, -1.0, 0.0, 1.5])
        );
        assert_eq!(values[4], ("equity", vec![11.0, 11.0, 9.0, 10.0, 11.5]));
    }

    #[test]
    fn a_negative_zero_short_or_long_keeps_the_sums_bits() {
        // -0.0 short: not +0.0, so summed; -0.0 + -0.0 stays -0.0.
        let mut writer = EquityWriter::new(EquityRecorder::default(), 1);
        writer.push(0, 1.0, -0.0, -0.0);
        let values = curve_columns(writer.finish());
        assert_eq!(values[3].1[0].to_bits(), (-0.0f64).to_bits());
        // -0.0 long without a short side: long + 0.0 is +0.0, computed, not shared.
        let mut writer = EquityWriter::new(EquityRecorder::default(), 1);
        writer.push(0, 1.0, -0.0, 0.0);
        let values = curve_columns(writer.finish());
        assert_eq!(values[1].1[0].to_bits(), (-0.0f64).to_bits());
        assert_eq!(values[3].1[0].to_bits(), 0.0f64.to_bits());
    }

    #[test]
    fn the_equity_writer_grows_past_the_rows_asked_for() {
        let mut writer = EquityWriter::new(EquityRecorder::default(), 1);
        for i in 0..100 {
            writer.push(i, 10.0, i as f64, -0.5);
        }
        let mut writer = EquityWriter::new(writer.finish(), 0);
        writer.push(100, 10.0, 100.0, -0.5);
        let rec = writer.finish();
        assert_eq!(rec.len(), 101);
        assert_eq!(rec.ts, (0..=100).collect::<Vec<i64>>());
        assert!(rec.cash.iter().all(|&c| c == 10.0));
        for i in 0..=100 {
            assert_eq!(rec.positions_value(i), i as f64 - 0.5);
            assert_eq!(rec.equity[i], 10.0 + (i as f64 - 0.5));
        }
    }
}
