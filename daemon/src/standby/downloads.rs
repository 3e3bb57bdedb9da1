//! One-time download links of disk images. A browser follows a plain link and cannot put the
//! API token on it, so an operator's API call gets a ticket instead, and the ticket is the
//! credential of one download: 256 random bits, good for one use within [`TICKET_TTL`], bound
//! to one disk of one point of one pair. Tickets live in memory only (a restarted standby
//! forgets them); at most [`MAX_TICKETS`] are outstanding, the oldest going first.
//!
//! Only a hash of each ticket is kept, and a ticket is found by comparing hashes (in constant
//! time), so neither memory nor timing tells a ticket.

use drpair_types::{Epoch, Lineage, PairId, PointId};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a ticket is good for.
pub const TICKET_TTL: Duration = Duration::from_secs(60);
/// Tickets outstanding at most; a new one drops the oldest.
pub const MAX_TICKETS: usize = 64;

/// What a ticket grants: the image of one disk of one point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub pair: PairId,
    pub point: PointId,
    /// The point's epoch and lineage when the ticket was issued: a point of the same id that
    /// is not the same point (the pair was deleted and registered again) is not granted.
    pub epoch: Epoch,
    pub lineage: Lineage,
    pub disk: u32,
}

struct Ticket {
    key: blake3::Hash,
    grant: Grant,
    expires: Instant,
}

/// The outstanding tickets.
#[derive(Default)]
pub struct Downloads {
    tickets: Mutex<VecDeque<Ticket>>,
}

impl Downloads {
    /// A new ticket for `grant`, good until `now` + [`TICKET_TTL`]: 64 hex digits.
    pub fn issue(&self, grant: Grant, now: Instant) -> String {
        let mut secret = [0u8; 32];
        drpair_tls::provider().secure_random.fill(&mut secret).expect("system random");
        let ticket: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        let mut tickets = self.tickets.lock().expect("downloads");
        tickets.retain(|t| t.expires > now);
        while tickets.len() >= MAX_TICKETS {
            tickets.pop_front();
        }
        tickets.push_back(Ticket { key: blake3::hash(ticket.as_bytes()), grant, expires: now + TICKET_TTL });
        ticket
    }

    /// Takes the ticket `ticket`: its grant, once, while it is good. Unknown, used and expired
    /// tickets are all `None`.
    pub fn take(&self, ticket: &str, now: Instant) -> Option<Grant> {
        let key = blake3::hash(ticket.as_bytes());
        let mut tickets = self.tickets.lock().expect("downloads");
        tickets.retain(|t| t.expires > now);
        // `blake3::Hash` compares in constant time.
        let at = tickets.iter().position(|t| t.key == key)?;
        tickets.remove(at).map(|t| t.grant)
    }

    /// Tickets outstanding (expired ones included until the next issue or take).
    pub fn outstanding(&self) -> usize {
        self.tickets.lock().expect("downloads").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(point: PointId) -> Grant {
        Grant { pair: PairId::new("web-01").unwrap(), point, epoch: point, lineage: Lineage::nil(), disk: 0 }
    }

    #[test]
    fn a_ticket_works_once() {
        let d = Downloads::default();
        let now = Instant::now();
        let t = d.issue(grant(3), now);
        assert_eq!(t.len(), 64, "256 bits in hex: {t}");
        assert!(t.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(d.issue(grant(3), now), t, "each ticket is new");
        assert_eq!(d.take("nope", now), None);
        assert_eq!(d.take(&t[..63], now), None, "a prefix is not the ticket");
        assert_eq!(d.take(&t, now), Some(grant(3)));
        assert_eq!(d.take(&t, now), None, "used");
    }

    #[test]
    fn tickets_expire() {
        let d = Downloads::default();
        let now = Instant::now();
        let t = d.issue(grant(1), now);
        let u = d.issue(grant(2), now);
        assert_eq!(d.take(&t, now + TICKET_TTL - Duration::from_millis(1)), Some(grant(1)));
        assert_eq!(d.take(&u, now + TICKET_TTL), None, "expired");
        assert_eq!(d.outstanding(), 0, "the expired ticket is dropped");
    }

    #[test]
    fn the_oldest_tickets_go_first() {
        let d = Downloads::default();
        let now = Instant::now();
        let first = d.issue(grant(0), now);
        let second = d.issue(grant(1), now);
        for i in 2..=MAX_TICKETS as u64 {
            d.issue(grant(i), now);
        }
        assert_eq!(d.outstanding(), MAX_TICKETS);
        assert_eq!(d.take(&first, now), None, "dropped for the newest");
        assert_eq!(d.take(&second, now), Some(grant(1)));
    }
}
