//! Runs a GIL-free engine job on a worker thread while the calling thread watches it: it
//! checks for Python signals (Ctrl-C) every [`TICK`] and reports progress to a Python callback
//! (a progress bar), when there is one, every [`INTERVAL`]. If a signal handler or the callback
//! raises (for example `KeyboardInterrupt`), the job is cancelled and the exception is returned.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ml4t_backtest_core::{BacktestError, Progress};
use pyo3::prelude::*;

/// How often the calling thread checks for signals.
const TICK: Duration = Duration::from_millis(20);
/// How often the progress callback is called.
const INTERVAL: Duration = Duration::from_millis(100);

/// The job's result, or the exception a signal handler or the progress callback raised.
pub enum Observed<T> {
    /// The job ran to its end (successfully or not).
    Finished(Result<T, BacktestError>),
    /// A signal handler or the callback raised; the job was cancelled.
    Interrupted(PyErr),
}

/// Runs `job` on a scoped thread with the GIL released, checking signals every [`TICK`] and,
/// with a `callback`, calling `callback(rows_done)` every [`INTERVAL`] and once at the end.
pub fn run_observed<T, F>(py: Python<'_>, callback: Option<&Py<PyAny>>, job: F) -> Observed<T>
where
    T: Send,
    F: FnOnce(Arc<Progress>) -> Result<T, BacktestError> + Send,
{
    let progress = Arc::new(Progress::new());
    let mut interrupted: Option<PyErr> = None;
    let outcome = py.detach(|| {
        std::thread::scope(|scope| {
            let (done_tx, done_rx) = mpsc::channel::<()>();
            let worker_progress = progress.clone();
            let handle = scope.spawn(move || {
                let result = job(worker_progress);
                let _ = done_tx.send(());
                result
            });
            let mut last_report = Instant::now();
            while let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(TICK) {
                if interrupted.is_some() {
                    continue;
                }
                let report = callback.filter(|_| last_report.elapsed() >= INTERVAL);
                let checked = Python::attach(|py| {
                    py.check_signals()?;
                    if let Some(callback) = report {
                        last_report = Instant::now();
                        callback.call1(py, (progress.rows(),))?;
                    }
                    Ok::<(), PyErr>(())
                });
                if let Err(err) = checked {
                    interrupted = Some(err);
                    progress.cancel();
                }
            }
            handle.join()
        })
    });
    if let Some(err) = interrupted {
        return Observed::Interrupted(err);
    }
    match outcome {
        Ok(result) => {
            if let Some(Err(err)) = callback.map(|callback| callback.call1(py, (progress.rows(),)))
            {
                return Observed::Interrupted(err);
            }
            Observed::Finished(result)
        }
        Err(payload) => std::panic::resume_unwind(payload),
    }
}
