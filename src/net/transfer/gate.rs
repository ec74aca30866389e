//! Who gets in to `serve_files`, and how many at once.
//!
//! A receiver's places are its defence against cheap denial of service, so
//! nothing a client can do without sending a real upload holds one:
//!
//! - the allow-list is checked as soon as a connection is accepted;
//! - an upload *slot* (`max_uploads`, default 64) is taken only once a
//!   valid header has arrived, and one client address (an IPv6 /64) holds
//!   at most `max_per_ip` (default 8) of them; uploads past either limit
//!   wait their turn (at most the idle timeout, then "busy");
//! - connections that hold no slot yet (reading a header, waiting for a
//!   turn) are at most [`MAX_WAITING`] (or `max_uploads`, if more); when
//!   another arrives, the one that has waited longest is closed, so silent
//!   connections cannot crowd real senders out;
//! - one address has at most [`CONNECTIONS_PER_SLOT`] × `max_per_ip`
//!   connections open at once; more are refused at once;
//! - a refusal's reply and the short wait after it (see
//!   `receiver::tell_sender`) hold no slot and no place among those
//!   waiting, but still count towards the address's connections; at most
//!   [`MAX_DRAINING`] run at once (past that, a refused connection is
//!   simply closed).

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::protocol::{Code, Refusal};
use super::receiver::ReceiveOptions;

/// Connections without a slot kept at once (unless `max_uploads` is larger).
pub const MAX_WAITING: usize = 64;
/// Connections one address may have open, per slot it may hold.
pub const CONNECTIONS_PER_SLOT: usize = 4;
/// Refusals that may wait for their sender to read the reply at once.
pub const MAX_DRAINING: usize = 64;

/// A client as the limits count it: an IPv4 address, or an IPv6 /64 (one
/// host's usual share, in which it can pick any address it likes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Client {
    V4(u32),
    V6(u64),
}

impl Client {
    fn of(ip: IpAddr) -> Client {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Client::V4(u32::from(v4)),
            IpAddr::V6(v6) => Client::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

/// The limits of one `serve_files` and who holds what.
pub struct Gate {
    max_uploads: usize,
    max_per_ip: usize,
    max_waiting: usize,
    state: Mutex<State>,
    /// Woken whenever a slot is given back.
    freed: Notify,
}

#[derive(Default)]
struct State {
    uploads: usize,
    slots: HashMap<Client, usize>,
    connections: HashMap<Client, usize>,
    /// Connections without a slot, oldest first, with what closes each.
    waiting: VecDeque<(u64, CancellationToken)>,
    next_id: u64,
    draining: usize,
}

/// A connection counted by the gate, from accept to its end.
pub struct Arrival {
    gate: Arc<Gate>,
    id: u64,
    client: Client,
    /// Cancelled when the connection waited longest without a slot and
    /// another one needed its place.
    pub evicted: CancellationToken,
}

/// An upload slot; given back when dropped.
pub struct Slot {
    gate: Arc<Gate>,
    client: Client,
}

/// Leave for one refusal to wait for its sender; given back when dropped.
pub struct Draining(Arc<Gate>);

impl Gate {
    pub fn new(options: &ReceiveOptions) -> Arc<Gate> {
        Arc::new(Gate {
            max_uploads: options.max_uploads.max(1),
            max_per_ip: options.max_per_ip.max(1),
            max_waiting: options.max_uploads.max(MAX_WAITING),
            state: Mutex::new(State::default()),
            freed: Notify::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every
        // change is one counter or one queue entry.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a newly accepted connection from `ip`, or refuses it when that
    /// address already has too many open. Makes room among the connections
    /// without a slot by closing the one that has waited longest.
    pub fn arrive(self: &Arc<Self>, ip: IpAddr) -> Result<Arrival, Refusal> {
        let client = Client::of(ip);
        let most = self.max_per_ip * CONNECTIONS_PER_SLOT;
        let mut state = self.state();
        let open = state.connections.entry(client).or_insert(0);
        if *open >= most {
            return Err(Refusal::new(
                Code::Busy,
                format!(
                    "{} already has {most} connections open here, the most one address may have; try again when some end",
                    ip.to_canonical()
                ),
            ));
        }
        *open += 1;
        if state.waiting.len() >= self.max_waiting
            && let Some((_, oldest)) = state.waiting.pop_front()
        {
            oldest.cancel();
        }
        let id = state.next_id;
        state.next_id += 1;
        let evicted = CancellationToken::new();
        state.waiting.push_back((id, evicted.clone()));
        Ok(Arrival {
            gate: self.clone(),
            id,
            client,
            evicted,
        })
    }

    /// Waits (at most `wait`) until `arrival` may take an upload slot, and
    /// takes it; refuses as busy, saying which limit, when the wait ends.
    pub async fn admit(
        self: &Arc<Self>,
        arrival: &Arrival,
        wait: Duration,
    ) -> Result<Slot, Refusal> {
        let deadline = tokio::time::Instant::now().checked_add(wait);
        loop {
            let freed = self.freed.notified();
            let mut freed = std::pin::pin!(freed);
            // Registered before the check, so a slot freed in between wakes us.
            freed.as_mut().enable();
            let held_here = {
                let mut state = self.state();
                let held_here = state.slots.get(&arrival.client).copied().unwrap_or(0);
                if state.uploads < self.max_uploads && held_here < self.max_per_ip {
                    state.uploads += 1;
                    *state.slots.entry(arrival.client).or_insert(0) += 1;
                    state.waiting.retain(|(id, _)| *id != arrival.id);
                    return Ok(Slot {
                        gate: self.clone(),
                        client: arrival.client,
                    });
                }
                held_here
            };
            let timed_out = match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, freed).await.is_err(),
                None => {
                    freed.await;
                    false
                }
            };
            if timed_out {
                let why = if held_here >= self.max_per_ip {
                    format!(
                        "this address already has {} running here, the most one address may have",
                        uploads(self.max_per_ip)
                    )
                } else {
                    format!(
                        "{} running here, the most at once",
                        uploads(self.max_uploads)
                    )
                };
                return Err(Refusal::new(
                    Code::Busy,
                    format!(
                        "the receiver is busy: {why}, and none ended within {}; try again later",
                        crate::error::human_duration(wait)
                    ),
                ));
            }
        }
    }

    /// Leave for a refusal to wait for its sender, if not too many already do.
    pub fn draining(self: &Arc<Self>) -> Option<Draining> {
        let mut state = self.state();
        (state.draining < MAX_DRAINING).then(|| {
            state.draining += 1;
            Draining(self.clone())
        })
    }
}

impl Arrival {
    /// This connection no longer waits for a place (it was refused and
    /// only waits for its sender to read why): it leaves the queue of
    /// those without a place, still counting towards its address's limit.
    pub fn settle(&self) {
        self.gate.state().waiting.retain(|(id, _)| *id != self.id);
    }
}

impl Drop for Arrival {
    fn drop(&mut self) {
        let mut state = self.gate.state();
        state.waiting.retain(|(id, _)| *id != self.id);
        if let Some(open) = state.connections.get_mut(&self.client) {
            *open -= 1;
            if *open == 0 {
                state.connections.remove(&self.client);
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        {
            let mut state = self.gate.state();
            state.uploads -= 1;
            if let Some(held) = state.slots.get_mut(&self.client) {
                *held -= 1;
                if *held == 0 {
                    state.slots.remove(&self.client);
                }
            }
        }
        self.gate.freed.notify_waiters();
    }
}

impl Drop for Draining {
    fn drop(&mut self) {
        self.0.state().draining -= 1;
    }
}

/// "1 upload", "64 uploads".
fn uploads(n: usize) -> String {
    if n == 1 {
        "1 upload".to_string()
    } else {
        format!("{n} uploads")
    }
}

/// The refusal for a client outside the allow-list, or `None` if allowed.
pub fn not_allowed(options: &ReceiveOptions, ip: IpAddr) -> Option<Refusal> {
    let allowed = options.allow.is_empty() || options.allow.iter().any(|c| c.contains(ip));
    (!allowed).then(|| {
        Refusal::new(
            Code::NotAllowed,
            format!("uploads from {} are not allowed here", ip.to_canonical()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(max_uploads: usize, max_per_ip: usize) -> ReceiveOptions {
        ReceiveOptions {
            max_uploads,
            max_per_ip,
            ..ReceiveOptions::default()
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// One address holds at most `max_per_ip` slots; another address still
    /// gets one, and a freed slot goes to the one waiting.
    #[test]
    fn slots_per_address_and_in_all() {
        let gate = Gate::new(&options(3, 2));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let short = Duration::from_millis(50);
        rt().block_on(async {
            let a1 = gate.arrive(a).unwrap();
            let a2 = gate.arrive(a).unwrap();
            let a3 = gate.arrive(a).unwrap();
            let first = gate.admit(&a1, short).await.unwrap();
            let _second = gate.admit(&a2, short).await.unwrap();
            let refusal = gate.admit(&a3, short).await.err().unwrap();
            assert_eq!(refusal.code, Code::Busy);
            assert!(
                refusal.message.contains("this address already has 2"),
                "{}",
                refusal.message
            );
            let b1 = gate.arrive(b).unwrap();
            let _third = gate.admit(&b1, short).await.unwrap();
            let b2 = gate.arrive(b).unwrap();
            let refusal = gate.admit(&b2, short).await.err().unwrap();
            assert!(
                refusal
                    .message
                    .contains("3 uploads running here, the most at once"),
                "{}",
                refusal.message
            );
            // A slot given back goes to a waiting upload.
            let waiting = gate.admit(&a3, Duration::from_secs(5));
            drop(first);
            assert!(waiting.await.is_ok());
        });
    }

    /// Connections without a slot are bounded: the oldest is evicted.
    #[test]
    fn the_longest_waiting_connection_makes_room() {
        let gate = Gate::new(&options(1, 1));
        let arrivals: Vec<Arrival> = (0..MAX_WAITING)
            .map(|i| {
                gate.arrive(IpAddr::from([10, 0, (i / 200) as u8, (i % 200) as u8]))
                    .unwrap()
            })
            .collect();
        assert!(arrivals.iter().all(|a| !a.evicted.is_cancelled()));
        let _newest = gate.arrive("10.9.9.9".parse().unwrap()).unwrap();
        assert!(arrivals[0].evicted.is_cancelled());
        assert!(arrivals[1..].iter().all(|a| !a.evicted.is_cancelled()));
    }

    /// One address may not open connections without end; an IPv6 /64 is one address.
    #[test]
    fn connections_per_address() {
        let gate = Gate::new(&options(64, 1));
        let mut kept = Vec::new();
        for i in 0..CONNECTIONS_PER_SLOT {
            kept.push(
                gate.arrive(format!("2001:db8::{i}").parse().unwrap())
                    .unwrap(),
            );
        }
        let refusal = gate
            .arrive("2001:db8::ffff".parse().unwrap())
            .err()
            .unwrap();
        assert_eq!(refusal.code, Code::Busy);
        assert!(gate.arrive("2001:db8:0:1::1".parse().unwrap()).is_ok());
        kept.pop();
        assert!(gate.arrive("2001:db8::ffff".parse().unwrap()).is_ok());
    }
}
