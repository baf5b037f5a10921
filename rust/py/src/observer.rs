//! Runs a GIL-free engine job on a worker thread while the calling thread reports its progress
//! to a Python callback (a progress bar) about ten times a second. If the callback raises (for
//! example `KeyboardInterrupt`), the job is cancelled and the exception is returned.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use ml4t_backtest_core::{BacktestError, Progress};
use pyo3::prelude::*;

const INTERVAL: Duration = Duration::from_millis(100);

/// The job's result, or the exception the progress callback raised.
pub enum Observed<T> {
    /// The job ran to its end (successfully or not).
    Finished(Result<T, BacktestError>),
    /// The callback raised; the job was cancelled.
    Interrupted(PyErr),
}

/// Runs `job` on a scoped thread with the GIL released, calling `callback(rows_done)` every
/// [`INTERVAL`] and once at the end.
pub fn run_observed<T, F>(py: Python<'_>, callback: &Py<PyAny>, job: F) -> Observed<T>
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
            while let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(INTERVAL) {
                if interrupted.is_none() {
                    let rows = progress.rows();
                    if let Err(err) = Python::attach(|py| callback.call1(py, (rows,)).map(|_| ())) {
                        interrupted = Some(err);
                        progress.cancel();
                    }
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
            if let Err(err) = callback.call1(py, (progress.rows(),)) {
                return Observed::Interrupted(err);
            }
            Observed::Finished(result)
        }
        Err(payload) => std::panic::resume_unwind(payload),
    }
}
