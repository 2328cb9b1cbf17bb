//! Who may connect: caps on connections in total and per IP address, and
//! QUIC address validation (a Retry) once handshakes arrive faster than
//! the hub wants to spend on strangers.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::core::{Limit, Limits};

/// What to do with a new connection attempt.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Serve it; the pass keeps its place counted until dropped.
    Accept(Pass),
    /// Ask the client to prove its address first.
    Retry,
    /// Refuse it: a cap is reached.
    Refuse(Limit),
}

/// The open connections, by address.
#[derive(Debug)]
pub(crate) struct Admission {
    limits: Limits,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    /// Attempts seen in the second that began at `window`.
    window: Instant,
    attempts: u32,
}

/// One admitted connection's place; given back when dropped.
#[derive(Debug)]
pub(crate) struct Pass {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Admission {
    pub(crate) fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            state: Mutex::new(State {
                total: 0,
                per_ip: HashMap::new(),
                window: Instant::now(),
                attempts: 0,
            }),
        })
    }

    /// Decides on an attempt from `ip` at `now`; `validated` tells whether
    /// the client already proved its address (it answered a Retry).
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr, validated: bool, now: Instant) -> Verdict {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if now.duration_since(state.window) >= Duration::from_secs(1) {
            state.window = now;
            state.attempts = 0;
        }
        state.attempts = state.attempts.saturating_add(1);
        if !validated && state.attempts > self.limits.handshakes_per_sec {
            return Verdict::Retry;
        }
        if state.total >= self.limits.connections {
            return Verdict::Refuse(Limit::Connections);
        }
        let open = state.per_ip.get(&ip).copied().unwrap_or(0);
        if open >= self.limits.connections_per_ip {
            return Verdict::Refuse(Limit::ConnectionsPerIp);
        }
        state.total += 1;
        state.per_ip.insert(ip, open + 1);
        Verdict::Accept(Pass {
            admission: self.clone(),
            ip,
        })
    }

    /// Connections open now, in total.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.state.lock().map(|state| state.total).unwrap_or(0)
    }
}

impl Pass {
    /// The address the connection came from.
    pub(crate) fn ip(&self) -> IpAddr {
        self.ip
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        let mut state = self
            .admission
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        state.total = state.total.saturating_sub(1);
        if let Some(open) = state.per_ip.get_mut(&self.ip) {
            *open -= 1;
            if *open == 0 {
                state.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            connections: 3,
            connections_per_ip: 2,
            handshakes_per_sec: 5,
            ..Limits::default()
        }
    }

    fn accepted(verdict: Verdict) -> Pass {
        match verdict {
            Verdict::Accept(pass) => pass,
            other => panic!("expected an accept, got {other:?}"),
        }
    }

    #[test]
    fn caps_per_ip_and_in_total_and_places_come_back() {
        let admission = Admission::new(limits());
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let now = Instant::now();
        let first = accepted(admission.admit(a, true, now));
        let _second = accepted(admission.admit(a, true, now));
        assert!(matches!(
            admission.admit(a, true, now),
            Verdict::Refuse(Limit::ConnectionsPerIp)
        ));
        let _third = accepted(admission.admit(b, true, now));
        assert!(matches!(
            admission.admit(b, true, now),
            Verdict::Refuse(Limit::Connections)
        ));
        drop(first);
        assert_eq!(admission.open(), 2);
        let _again = accepted(admission.admit(a, true, now));
    }

    #[test]
    fn a_burst_of_strangers_is_asked_to_validate_and_the_validated_pass() {
        let admission = Admission::new(Limits {
            connections_per_ip: 100,
            connections: 100,
            ..limits()
        });
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        let now = Instant::now();
        let passes: Vec<_> = (0..5)
            .map(|_| accepted(admission.admit(ip, false, now)))
            .collect();
        assert!(matches!(admission.admit(ip, false, now), Verdict::Retry));
        let _validated = accepted(admission.admit(ip, true, now));
        // A second later the window starts over.
        let later = now + Duration::from_secs(1);
        let _fresh = accepted(admission.admit(ip, false, later));
        drop(passes);
    }
}
