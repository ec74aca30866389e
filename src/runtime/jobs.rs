//! The background work of this process — tasks, servers, file servers —
//! like a shell's job table: `jobs()` lists what still runs, `stop_all()`
//! stops it, `wait()` waits for it, and a script's end stops it.
//!
//! Without this table a task whose handle was dropped (`task(|| loop {})`
//! typed at the prompt, or a `join()` given up with Ctrl-C) would spin on
//! with nothing able to reach it.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU64, Ordering},
};

use rhai::Dynamic;
use tokio::sync::watch;

use crate::error::Result;

/// Something that runs in the background until it finishes or is stopped.
pub trait Job: Send + Sync {
    /// Asks it to stop: its blocking calls and loops end.
    fn stop(&self);
    /// Flips to `true` when it has ended.
    fn ended(&self) -> watch::Receiver<bool>;
    /// Still running (not finished, not stopped)?
    fn is_running(&self) -> bool {
        !*self.ended().borrow()
    }
    /// The handle a script sees (`Task`, `Server`, `FileServer`).
    fn handle(&self) -> Dynamic;
}

static JOBS: Mutex<Vec<Arc<dyn Job>>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A number for a new job, shown as `#3` when it prints.
pub fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Lists `job` until it ends.
pub fn add(job: Arc<dyn Job>) {
    if let Ok(mut jobs) = JOBS.lock() {
        jobs.retain(|j| j.is_running());
        jobs.push(job);
    }
}

/// The jobs still running, oldest first.
pub fn running() -> Vec<Arc<dyn Job>> {
    match JOBS.lock() {
        Ok(mut jobs) => {
            jobs.retain(|j| j.is_running());
            jobs.clone()
        }
        Err(_) => Vec::new(),
    }
}

/// Stops every running job; returns how many there were.
pub fn stop_all() -> usize {
    let jobs = running();
    for job in &jobs {
        job.stop();
    }
    jobs.len()
}

/// Waits until no job runs (each ends by itself or is stopped elsewhere).
/// Ctrl-C ends the wait, not the jobs.
pub fn wait_all() -> Result<()> {
    loop {
        let Some(job) = running().into_iter().next() else {
            return Ok(());
        };
        let mut ended = job.ended();
        super::block_on(async move {
            let _ = ended.wait_for(|done| *done).await;
            Ok(())
        })?;
    }
}
