//! The background work of this process — tasks, servers, file servers —
//! like a shell's job table: `jobs()` lists what still runs, `stop_all()`
//! stops it, `wait()` waits for it, and a script's end stops it.
//!
//! Without this table a task whose handle was dropped (`task(|| loop {})`
//! typed at the prompt, or a `join()` given up with Ctrl-C) would spin on
//! with nothing able to reach it.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use rhai::Dynamic;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

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

/// Waits up to `limit` for a job that was just told to stop to end, as its
/// `stop()` does: on a thread whose own token may be cancelled already (a
/// handler stopping its own job), so this does not race that token; where
/// the thread may not block at all (an event handler), it does not wait.
pub fn wait_for_end(mut ended: watch::Receiver<bool>, limit: Duration) {
    if super::ensure_may_block().is_ok() {
        super::blocking(|| {
            super::handle().block_on(async move {
                let _ = tokio::time::timeout(limit, ended.wait_for(|done| *done)).await;
            })
        });
    }
}

/// What a background server holds to be stopped and waited for: the token
/// its work races, and a flag its work raises once it has ended (the port
/// free, the connections closed). Every server type (`serve`, `http_serve`,
/// `forward`, `socks_serve`, a UDP forward, `dns_serve`) is stopped, waited
/// for and listed the same way through one of these.
#[derive(Debug)]
pub struct Lifecycle {
    token: CancellationToken,
    ended: watch::Sender<bool>,
}

/// How long `stop()` waits for a stopped server's work to end.
const STOP_WAIT: Duration = Duration::from_secs(2);

impl Lifecycle {
    /// A running job whose work races `token`.
    pub fn new(token: CancellationToken) -> Lifecycle {
        Lifecycle {
            token,
            ended: watch::Sender::new(false),
        }
    }

    /// The token the job's work races: cancelled by [`Lifecycle::stop`].
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Said by the job's work as it ends, whatever ended it.
    pub fn finish(&self) {
        self.ended.send_replace(true);
    }

    /// Has the work ended?
    pub fn is_stopped(&self) -> bool {
        *self.ended.borrow()
    }

    /// Flips to `true` when the work has ended ([`Job::ended`]).
    pub fn ended(&self) -> watch::Receiver<bool> {
        self.ended.subscribe()
    }

    /// Asks the work to end, then waits (up to 2 s) until it has.
    pub fn stop(&self) {
        self.token.cancel();
        wait_for_end(self.ended(), STOP_WAIT);
    }

    /// Blocks until the work has ended (stopped here or elsewhere), or Ctrl-C.
    pub fn wait(&self) -> Result<()> {
        let mut ended = self.ended();
        super::block_on(async move {
            let _ = ended.wait_for(|done| *done).await;
            Ok(())
        })
    }
}

/// How long `stop_all` gives the stopped jobs to notice and end.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// Stops every running job; returns how many there were. Stopping is a
/// request each job's thread notices at its next wait or loop step, so this
/// then waits for them to end (at most [`STOP_GRACE`] in all, less on
/// Ctrl-C): right after it, `jobs()` lists none of them.
pub fn stop_all() -> usize {
    let jobs = running();
    if jobs.is_empty() {
        // No wait, so no runtime started: a script without jobs ends at once.
        return 0;
    }
    for job in &jobs {
        job.stop();
    }
    let endings: Vec<_> = jobs.iter().map(|job| job.ended()).collect();
    // On a thread that may not block (an event handler) there is no wait.
    let _ = super::block_on(async move {
        let all_ended = async {
            for mut ended in endings {
                let _ = ended.wait_for(|done| *done).await;
            }
        };
        let _ = tokio::time::timeout(STOP_GRACE, all_ended).await;
        Ok(())
    });
    jobs.len()
}

/// Waits until no job runs (each ends by itself or is stopped elsewhere).
/// Ctrl-C ends the wait, not the jobs.
pub fn wait_all() -> Result<()> {
    // A task waiting for every job would wait for itself forever.
    if super::in_background() {
        return Err(crate::error::Error::invalid(
            "it waits for all background work, so it cannot be called from inside a task or a server's handler (it would wait for itself); call it from the script's main body, or join() the task you need",
        ));
    }
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
