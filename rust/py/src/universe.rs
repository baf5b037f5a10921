//! The asset universe of a run as data: asset names by code, the feed's time zone and each
//! asset's delisting, passed by Python as one dict (`{"names": [...], "time_zone":
//! "America/New_York" | None, "delisted_at": [ns | None, ...], "delisting_return": [float |
//! None, ...], "session_closes": [ns, ...], "membership": {"ts": [...], "asset_id": [...],
//! "member": [...]}, "reject_non_members": bool}`, the last five keys optional).
//!
//! Datetimes are built here, without a Python callback per value, and equal exactly what
//! `ml4t.backtest.universe.Universe.to_datetime` returns: the nanoseconds are floored to
//! microseconds (`ns // 1000`, so negative values round down); a naive feed gets the naive civil
//! time of that UTC instant, an aware feed the instant in its zone (`utc.astimezone(tz)`). The
//! time zone's rules stay Python's: `zoneinfo.ZoneInfo(time_zone)` is looked up once per run
//! and its `fromutc` places each instant, as `astimezone` does.

use std::collections::HashMap;

use ml4t_backtest_core::membership::{Membership, MembershipChange};
use ml4t_backtest_core::AssetId;
use pyo3::exceptions::PyOverflowError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDateTime, PyDict, PyString, PyTzInfo};

use crate::dict::Spec;
use crate::errors::{chain, Error, OrderError};

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Asset names by code, the reverse map, and the feed's time zone.
pub struct Universe {
    names: Vec<Py<PyString>>,
    index: HashMap<String, AssetId>,
    tz: Option<Py<PyTzInfo>>,
    /// Per asset, the nanosecond timestamp of its last bar when it is delisted in the run.
    delisted_at: Vec<Option<i64>>,
    /// Per asset, its delisting return (empty: none).
    delisting_return: Vec<Option<f64>>,
    /// The last data timestamp of each trading session (`None`: no calendar).
    session_closes: Option<Vec<i64>>,
    /// The point-in-time universe's changes and whether entries into non-members are refused
    /// (`None`: no universe).
    membership: Option<(Membership, bool)>,
}

impl Universe {
    /// Builds the universe from the sorted asset names and the time zone (naive if `None`).
    pub fn new(py: Python<'_>, names: Vec<String>, time_zone: Option<&str>) -> PyResult<Self> {
        let tz = match time_zone.filter(|tz| !tz.is_empty()) {
            None => None,
            Some(key) => Some(
                py.import("zoneinfo")?
                    .getattr("ZoneInfo")?
                    .call1((key,))?
                    .cast_into::<PyTzInfo>()?
                    .unbind(),
            ),
        };
        let index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as AssetId))
            .collect();
        let names = names
            .iter()
            .map(|n| PyString::new(py, n).unbind())
            .collect();
        Ok(Universe {
            names,
            index,
            tz,
            delisted_at: Vec::new(),
            delisting_return: Vec::new(),
            session_closes: None,
            membership: None,
        })
    }

    /// Reads the universe dict of a run (`names`, `time_zone`).
    pub fn from_dict(d: &Bound<'_, PyDict>) -> Result<Self, Error> {
        let spec = Spec::root(d);
        let names: Vec<String> = spec.req("names")?;
        let time_zone: Option<String> = spec.get("time_zone")?;
        let delisted_at: Option<Vec<Option<i64>>> = spec.get("delisted_at")?;
        let mut universe = Universe::new(d.py(), names, time_zone.as_deref())?;
        if let Some(delisted_at) = delisted_at {
            if delisted_at.len() != universe.len() {
                return Err(ml4t_backtest_core::BacktestError::config(
                    "universe.delisted_at",
                    format!(
                        "one entry per asset: got {}, the universe has {}",
                        delisted_at.len(),
                        universe.len()
                    ),
                )
                .into());
            }
            universe.delisted_at = delisted_at;
        }
        let returns: Option<Vec<Option<f64>>> = spec.get("delisting_return")?;
        if let Some(returns) = returns {
            if returns.len() != universe.len() {
                return Err(ml4t_backtest_core::BacktestError::config(
                    "universe.delisting_return",
                    format!(
                        "one entry per asset: got {}, the universe has {}",
                        returns.len(),
                        universe.len()
                    ),
                )
                .into());
            }
            universe.delisting_return = returns;
        }
        universe.session_closes = spec.get("session_closes")?;
        if spec.object("membership").is_some() {
            let table = spec.section("membership")?;
            let ts: Vec<i64> = table.req("ts")?;
            let asset: Vec<AssetId> = table.req("asset_id")?;
            let member: Vec<bool> = table.req("member")?;
            if asset.len() != ts.len() || member.len() != ts.len() {
                return Err(ml4t_backtest_core::BacktestError::config(
                    "universe.membership",
                    "ts, asset_id and member must have one value per change",
                )
                .into());
            }
            let changes = ts
                .iter()
                .zip(&asset)
                .zip(&member)
                .map(|((&ts, &asset), &member)| MembershipChange { ts, asset, member })
                .collect();
            let reject = spec.get::<bool>("reject_non_members")?.unwrap_or(true);
            let list = Membership::new(changes, universe.len() as u32)?;
            universe.membership = Some((list, reject));
        }
        Ok(universe)
    }

    /// The point-in-time universe's changes and whether entries into non-members are refused
    /// (`None`: the run has no universe).
    pub fn membership(&self) -> Option<&(Membership, bool)> {
        self.membership.as_ref()
    }

    /// Per asset, the timestamp of its last bar when it is delisted in the run (empty: none).
    pub fn delisted_at(&self) -> &[Option<i64>] {
        &self.delisted_at
    }

    /// Per asset, its delisting return (empty: none).
    pub fn delisting_return(&self) -> &[Option<f64>] {
        &self.delisting_return
    }

    /// The last data timestamp of each trading session (`None`: the run has no calendar).
    pub fn session_closes(&self) -> Option<&[i64]> {
        self.session_closes.as_deref()
    }

    /// Whether `code` still trades at `ts`: not delisted, or before its last bar.
    pub fn is_active(&self, code: AssetId, ts: i64) -> bool {
        match self.delisted_at.get(code as usize) {
            Some(Some(last)) => ts < *last,
            _ => true,
        }
    }

    /// Number of assets.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// The code of the asset named `name`.
    pub fn code(&self, name: &str) -> Option<AssetId> {
        self.index.get(name).copied()
    }

    /// The name of asset `code`.
    pub fn name<'py>(&self, py: Python<'py>, code: AssetId) -> Bound<'py, PyString> {
        self.names[code as usize].bind(py).clone()
    }

    /// Resolves an asset given by name (str) or by code: an int or any integer type with
    /// `__index__` (numpy's, as `batch.asset_ids` hands out), never a bool. Anything else, an
    /// unknown name or a code outside the universe raises `OrderError`.
    pub fn resolve(&self, asset: &Bound<'_, PyAny>) -> PyResult<AssetId> {
        if let Ok(name) = asset.cast::<PyString>() {
            let name = name.to_str()?;
            return self.index.get(name).copied().ok_or_else(|| {
                OrderError::new_err(format!("asset: unknown asset '{name}' (not in the feed)"))
            });
        }
        let expected = || {
            format!(
                "asset: expected a name (str) or code (int), got {}",
                asset.get_type()
            )
        };
        if asset.is_instance_of::<PyBool>() {
            return Err(OrderError::new_err(expected()));
        }
        // An int, or what `__index__` makes of a numpy (or other) integer.
        let outside = |code: &dyn std::fmt::Display| {
            OrderError::new_err(format!(
                "asset: code {code} is outside 0..{}",
                self.names.len()
            ))
        };
        match asset.extract::<i64>() {
            Ok(code) if code >= 0 && (code as u64) < self.names.len() as u64 => Ok(code as AssetId),
            Ok(code) => Err(outside(&code)),
            Err(err) if err.is_instance_of::<PyOverflowError>(asset.py()) => {
                Err(outside(&asset.str()?))
            }
            Err(err) => Err(chain(asset.py(), err, expected(), OrderError::new_err)),
        }
    }

    /// `ns` as the user's data shows it: the datetime in the feed's time zone, as Python
    /// prints it (`2024-01-02 09:30:00-05:00`); raw nanoseconds only if that fails.
    pub fn time_text(&self, py: Python<'_>, ns: i64) -> String {
        self.datetime(py, ns)
            .and_then(|dt| dt.str().map(|text| text.to_string()))
            .unwrap_or_else(|_| format!("{ns} ns since the epoch"))
    }

    /// A Python datetime for `ns` nanoseconds since the epoch, in the feed's time zone.
    pub fn datetime<'py>(&self, py: Python<'py>, ns: i64) -> PyResult<Bound<'py, PyAny>> {
        let micros = ns.div_euclid(1000);
        let (year, month, day) = civil_from_days(micros.div_euclid(MICROS_PER_DAY));
        let of_day = micros.rem_euclid(MICROS_PER_DAY);
        let seconds = of_day / 1_000_000;
        let (hour, minute, second) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
        let microsecond = (of_day % 1_000_000) as u32;
        let tz = self.tz.as_ref().map(|tz| tz.bind(py));
        let civil = PyDateTime::new(
            py,
            year,
            month,
            day,
            hour as u8,
            minute as u8,
            second as u8,
            microsecond,
            tz,
        )?;
        match tz {
            None => Ok(civil.into_any()),
            // The UTC fields carry the zone; `fromutc` moves them to its local time.
            Some(tz) => tz.call_method1(intern!(py, "fromutc"), (civil,)),
        }
    }
}

/// The proleptic Gregorian (year, month, day) of `days` since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, exact for every `i64` nanosecond timestamp).
fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year as i32, month as u8, day as u8)
}
