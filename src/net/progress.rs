//! Progress of a long transfer (an upload, a download), watched from the
//! calling thread: a bar on stderr when it is a terminal, or a Rhai closure
//! called with the figures four times a second and once at the end.
//!
//! The transfer itself runs as a task on the runtime and only bumps atomic
//! counters; [`watch`] polls them from the script's own thread, because a
//! Rhai closure can only run there. Dropping the wait (Ctrl-C, or the
//! closure throwing) aborts the task, so nothing runs on unobserved.

use std::{
    future::Future,
    io::IsTerminal,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use rhai::{Dynamic, FnPtr, Map, NativeCallContext};

use crate::error::{Error, Result};
use crate::runtime;

/// How often the figures are read.
const TICK: Duration = Duration::from_millis(250);

/// Figures the transfer updates and the caller's thread reads.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes done so far, a resumed prefix included.
    pub done: AtomicU64,
    pub total: AtomicU64,
    /// Set when the size is not known in advance (a download without
    /// Content-Length): the bar becomes a spinner.
    pub total_unknown: AtomicBool,
    /// Where this transfer started (non-zero when resuming).
    pub resumed_from: AtomicU64,
}

/// How the caller wants to hear about progress.
pub enum Report<'a> {
    /// A progress bar on stderr when stderr is a terminal, else nothing.
    Auto,
    Off,
    /// Called with the figures (and once more at the end).
    Callback(&'a mut dyn FnMut(&Figures) -> Result<()>),
}

/// A snapshot of a running transfer.
#[derive(Debug, Clone)]
pub struct Figures {
    pub bytes: u64,
    /// `None` while the size is unknown.
    pub total: Option<u64>,
    pub percent: Option<f64>,
    /// Bytes per second since the start, a resumed prefix left out.
    pub rate: f64,
    /// Seconds left at that rate.
    pub eta: Option<f64>,
}

impl Progress {
    /// Whether the transfer has begun: its size is known (or known to be
    /// unknown), or bytes have moved.
    pub fn known(&self) -> bool {
        self.total.load(Ordering::Relaxed) > 0
            || self.total_unknown.load(Ordering::Relaxed)
            || self.done.load(Ordering::Relaxed) > 0
    }

    /// The figures now, `started` being when this transfer began.
    pub fn figures(&self, started: Instant) -> Figures {
        let bytes = self.done.load(Ordering::Relaxed);
        let total = (!self.total_unknown.load(Ordering::Relaxed))
            .then(|| self.total.load(Ordering::Relaxed));
        let seconds = started.elapsed().as_secs_f64().max(1e-6);
        // A resumed prefix was not moved now; it must not inflate the rate.
        let moved = bytes.saturating_sub(self.resumed_from.load(Ordering::Relaxed));
        let rate = moved as f64 / seconds;
        Figures {
            bytes,
            total,
            percent: total.map(|total| {
                if total == 0 {
                    100.0
                } else {
                    bytes as f64 * 100.0 / total as f64
                }
            }),
            rate,
            eta: total.map(|total| {
                if rate > 0.0 {
                    total.saturating_sub(bytes) as f64 / rate
                } else {
                    0.0
                }
            }),
        }
    }
}

/// Runs `work` on the runtime and reports `progress` from this thread until
/// it finishes. `final_rate` gives the rate reported in the last call, and
/// `after_done` words a callback that fails on that last call, when the
/// work is already complete (a script must know the file arrived).
pub fn watch<T: Send + 'static>(
    work: impl Future<Output = Result<T>> + Send + 'static,
    progress: &Progress,
    mut report: Report<'_>,
    final_rate: impl FnOnce(&T) -> f64,
    after_done: impl FnOnce(&T, Error) -> Error,
) -> Result<T> {
    let started = Instant::now();
    let mut task = AbortOnDrop(runtime::handle().spawn(work));
    let bar = match report {
        Report::Auto if std::io::stderr().is_terminal() => Some(progress_bar()),
        _ => None,
    };
    loop {
        let step = runtime::block_on(async {
            tokio::select! {
                joined = &mut task.0 => Ok(Some(joined)),
                _ = tokio::time::sleep(TICK) => Ok(None),
            }
        });
        let step = match step {
            Ok(step) => step,
            Err(e) => {
                if let Some(bar) = &bar {
                    bar.abandon();
                }
                return Err(e);
            }
        };
        match step {
            Some(joined) => {
                let done = joined
                    .map_err(|e| Error::Protocol(format!("the transfer task failed: {e}")))?;
                if let Some(bar) = &bar {
                    bar.finish_and_clear();
                }
                let done = done?;
                if let Report::Callback(callback) = &mut report {
                    let mut last = progress.figures(started);
                    last.rate = final_rate(&done);
                    callback(&last).map_err(|e| after_done(&done, e))?;
                }
                return Ok(done);
            }
            // Nothing to show until the size (or the lack of one) is known:
            // a download is still waiting for the server's headers.
            None if !progress.known() => {}
            None => {
                let now = progress.figures(started);
                if let Some(bar) = &bar {
                    match now.total {
                        Some(total) => bar.set_length(total),
                        None => spinner(bar),
                    }
                    bar.set_position(now.bytes);
                }
                if let Report::Callback(callback) = &mut report
                    && let Err(e) = callback(&now)
                {
                    if let Some(bar) = &bar {
                        bar.abandon();
                    }
                    return Err(e);
                }
            }
        }
    }
}

fn progress_bar() -> indicatif::ProgressBar {
    let bar =
        indicatif::ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// Turns a bar into a spinner with a byte count, for an unknown size.
fn spinner(bar: &indicatif::ProgressBar) {
    if bar.length().is_some() {
        // Style first: unsetting the length redraws, and the bar style
        // would show "0 B/0 B … ETA" for a moment.
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{spinner} {bytes} {binary_bytes_per_sec}")
        {
            bar.set_style(style);
        }
        bar.unset_length();
    }
    bar.tick();
}

/// Aborts a spawned task when dropped: Ctrl-C returns from the wait, and
/// the transfer must stop with it rather than run on unobserved.
pub struct AbortOnDrop<T>(pub tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a script asked for with its `progress` option.
pub enum Wanted {
    /// `true` or absent: a bar on a terminal.
    Auto,
    Off,
    Closure(FnPtr),
}

impl Wanted {
    /// Reads a `progress` option: `true`, `false` or a closure.
    pub fn from_option(value: Option<&Dynamic>) -> Result<Wanted> {
        let bad = |v: &Dynamic| {
            crate::net::options::Options::bad(
                "progress",
                "true, false or a closure like |p| print(p.percent)",
                v,
            )
        };
        match value {
            None => Ok(Wanted::Auto),
            Some(v) if v.is_unit() => Ok(Wanted::Auto),
            Some(v) if v.is_fnptr() => v
                .clone()
                .try_cast::<FnPtr>()
                .map(Wanted::Closure)
                .ok_or_else(|| bad(v)),
            Some(v) => match v.as_bool() {
                Ok(true) => Ok(Wanted::Auto),
                Ok(false) => Ok(Wanted::Off),
                Err(_) => Err(bad(v)),
            },
        }
    }
}

/// Calls `wanted`'s closure (if it is one) with the figures as a map, on
/// the calling thread; a closure that throws stops the transfer. Like every
/// callback, the closure works on copies of what it captured.
pub fn with_report<T>(
    ctx: &NativeCallContext,
    wanted: &Wanted,
    run: impl FnOnce(Report<'_>) -> Result<T>,
) -> Result<T> {
    match wanted {
        Wanted::Auto => run(Report::Auto),
        Wanted::Off => run(Report::Off),
        Wanted::Closure(f) => {
            crate::runtime::closure::check_params(ctx, f, "the progress closure", &["p"])?;
            let f = crate::runtime::closure::detached_fn(f.clone());
            let mut call = |figures: &Figures| -> Result<()> {
                f.call_within_context::<Dynamic>(ctx, (figures_map(figures),))
                    .map(|_| ())
                    .map_err(|e| Error::Script {
                        kind: crate::error::kind_of(&e),
                        message: format!(
                            "the progress callback failed: {}",
                            crate::error::message_of(&e)
                        ),
                    })
            };
            run(Report::Callback(&mut call))
        }
    }
}

/// The figures as the map a progress closure receives:
/// `#{bytes, total, percent, rate, eta}` (`()` where unknown).
pub fn figures_map(p: &Figures) -> Map {
    let unknown = |v: Option<Dynamic>| v.unwrap_or(Dynamic::UNIT);
    let mut map = Map::new();
    map.insert("bytes".into(), (p.bytes as i64).into());
    map.insert("total".into(), unknown(p.total.map(|t| (t as i64).into())));
    map.insert("percent".into(), unknown(p.percent.map(Dynamic::from)));
    map.insert("rate".into(), p.rate.into());
    map.insert("eta".into(), unknown(p.eta.map(Dynamic::from)));
    map
}
