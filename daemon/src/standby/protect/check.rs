//! A protection request checked whole before anything changes ([`plan`]): the original pair's
//! failover completed and nothing protects it yet, the new pair's id is free, the tracker and
//! the cut interval are valid, the disks share one chunk size, and the standby's link answers.

use super::ProtectError;
use crate::standby::Standby;
use crate::standby::pair::PairHandle;
use crate::standby::pair::results::JobState;
use drpair_types::{PairId, PairState, PointId, ProtectRecoveredRequest};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::Duration;

/// How long the standby's link may take to accept a test connection.
const REACH_TIMEOUT: Duration = Duration::from_secs(3);
/// The cut interval when the request gives none.
pub const DEFAULT_CUT_INTERVAL: &str = "1m";

/// What a checked request will start.
#[derive(Debug, Clone)]
pub struct Plan {
    pub new_pair: PairId,
    /// `HOST:PORT` as the agent is given it.
    pub standby: String,
    pub this_standby: bool,
    /// The fingerprint the agent pins (`None`: this standby's plaintext link).
    pub fingerprint: Option<String>,
    /// Another standby's enrollment secret.
    pub secret: Option<String>,
    pub disks: Vec<String>,
    pub chunk_size: u32,
    pub tracker: String,
    pub cut_interval: String,
    pub failover_point: PointId,
}

/// Checks `req` for the pair of `h`; nothing changes.
pub fn plan(sb: &Standby, h: &PairHandle, req: &ProtectRecoveredRequest) -> Result<Plan, ProtectError> {
    let rec = h.record.lock().expect("record").clone();
    let pair = &rec.pair_id;
    let failover_running = h.runtime.lock().expect("runtime").failover.as_ref().map(|j| {
        let j = j.lock().expect("failover");
        (j.point, j.progress_percent)
    });
    if let Some((point, percent)) = failover_running {
        return Err(ProtectError::State(format!(
            "pair '{pair}': the failover to point {point} has not completed ({percent:.0}% on the targets); protect the recovered disks once it has (`drpair failover … --protect` does so by itself)"
        )));
    }
    if rec.lifecycle.state != PairState::FailedOver {
        return Err(ProtectError::State(format!(
            "pair '{pair}' is {}, not failed over: only the recovered disks of a completed failover can be protected",
            rec.lifecycle.state.label()
        )));
    }
    let Some(failover) = rec.failover.as_ref() else {
        return Err(ProtectError::State(format!("pair '{pair}' has no failover record")));
    };
    if failover.state != JobState::Done {
        return Err(ProtectError::State(format!(
            "pair '{pair}': the failover to point {} did not complete ({}); the targets are not whole disks to protect",
            failover.point, failover.message
        )));
    }
    if sb.instant.running(pair.as_str()) {
        return Err(ProtectError::State(format!(
            "pair '{pair}': an instant failover's session still runs on the targets; stop it first (`drpair failover {pair} --stop-instant`)"
        )));
    }
    if let Some(p) = rec.protected_by.as_ref().filter(|p| p.state.active()) {
        return Err(ProtectError::State(format!(
            "pair '{pair}' is already protected by pair '{}' ({}); `drpair pairs unprotect-recovered {pair}` stops that first",
            p.pair,
            drpair_types::ProtectionState::from(p.state).label()
        )));
    }
    let new_pair = match &req.new_pair {
        Some(n) => PairId::new(n.trim()).map_err(|e| ProtectError::Param("new_pair", e.to_string()))?,
        None => PairId::new(format!("{pair}-recovered")).map_err(|e| {
            ProtectError::Param(
                "new_pair",
                format!("the default id '{pair}-recovered' is not one ({e}); give new_pair"),
            )
        })?,
    };
    if &new_pair == pair {
        return Err(ProtectError::Param("new_pair", "the new pair must have another id than the original".into()));
    }
    if let Some(other) = sb.registry.get(&new_pair) {
        // The pair of an earlier protection of this same original may be taken again.
        let ours = other.record.lock().expect("record").recovered_from.as_ref().is_some_and(|r| &r.pair == pair);
        if !ours {
            return Err(ProtectError::State(format!(
                "pair '{new_pair}' exists already on this standby; name the new pair with new_pair (--new-pair)"
            )));
        }
    }
    for other in sb.registry.all() {
        let o = other.record.lock().expect("record");
        if o.pair_id != *pair && o.protected_by.as_ref().is_some_and(|p| p.state.active() && p.pair == new_pair) {
            return Err(ProtectError::State(format!(
                "pair '{new_pair}' already protects the recovered disks of pair '{}'",
                o.pair_id
            )));
        }
    }
    let sizes: Vec<u32> = rec.geometries_at(failover.epoch).iter().map(|g| g.chunk_size.bytes()).collect();
    let chunk_size = sizes[0];
    if sizes.iter().any(|&s| s != chunk_size) {
        return Err(ProtectError::Param(
            "pair",
            format!(
                "the disks of pair '{pair}' have different chunk sizes ({sizes:?}); one agent ships one chunk size, so they cannot be protected together"
            ),
        ));
    }
    let disks = failover.targets.clone();
    let tracker = match req.tracker.as_deref().map(str::trim) {
        Some(t @ ("tracefs" | "scan")) => t.to_string(),
        Some(t) => {
            return Err(ProtectError::Param(
                "tracker",
                format!("tracker '{t}' cannot protect recovered disks: give tracefs (block devices) or scan"),
            ));
        }
        None if disks.iter().all(|d| is_block_device(d)) => "tracefs".into(),
        None => "scan".into(),
    };
    let cut_interval = req.cut_interval.as_deref().unwrap_or(DEFAULT_CUT_INTERVAL).trim().to_string();
    match humantime::parse_duration(&cut_interval) {
        Ok(d) if (Duration::from_secs(1)..=Duration::from_secs(86_400)).contains(&d) => {}
        _ => {
            return Err(ProtectError::Param(
                "cut_interval",
                format!("cut interval '{cut_interval}' must be a duration from 1s to 1d, e.g. 1m"),
            ));
        }
    }
    let link_port = sb.link_port.load(std::sync::atomic::Ordering::Relaxed);
    let standby = match req.standby.as_deref().map(str::trim) {
        Some(s) => s.to_string(),
        None => own_link(&sb.data_dir, link_port).to_string(),
    };
    let addr = reachable(&standby)?;
    let this_standby = addr.port() == link_port && is_local(addr);
    let (fingerprint, secret) = if this_standby {
        if req.standby_fingerprint.is_some() || req.enroll_secret.is_some() {
            return Err(ProtectError::Param(
                "standby_fingerprint",
                format!(
                    "{standby} is this standby's own link: it enrolls the agent itself; give no fingerprint or secret"
                ),
            ));
        }
        match &sb.identity {
            Some(id) => (Some(id.fingerprint().to_string()), None),
            None if sb.token.is_some() => (None, None),
            None => {
                return Err(ProtectError::State(
                    "this standby's link runs in plaintext without a token: an agent could not authenticate".into(),
                ));
            }
        }
    } else {
        match (&req.standby_fingerprint, &req.enroll_secret) {
            (Some(f), Some(s)) if !f.trim().is_empty() && !s.trim().is_empty() => {
                (Some(f.trim().to_string()), Some(s.trim().to_string()))
            }
            _ => {
                return Err(ProtectError::Param(
                    "standby_fingerprint",
                    format!(
                        "{standby} is another standby: give its fingerprint and an enrollment secret for pair '{new_pair}' (`drpair pairs enroll {new_pair}` on that standby prints both)"
                    ),
                ));
            }
        }
    };
    Ok(Plan {
        new_pair,
        standby,
        this_standby,
        fingerprint,
        secret,
        disks,
        chunk_size,
        tracker,
        cut_interval,
        failover_point: failover.point,
    })
}

/// This standby's link as an agent on this host reaches it: the address it is bound to
/// (`DATA_DIR/link.addr`), loopback when bound to every address.
fn own_link(data_dir: &std::path::Path, port: u16) -> SocketAddr {
    let bound =
        std::fs::read_to_string(data_dir.join("link.addr")).ok().and_then(|s| s.trim().parse::<SocketAddr>().ok());
    match bound {
        Some(a) if a.port() == port && !a.ip().is_unspecified() => a,
        Some(a) if a.is_ipv6() => SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), port),
        _ => SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), port),
    }
}

fn is_block_device(path: &str) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device())
}

/// `raw` as `HOST:PORT`, resolved, with a link accepting connections there.
fn reachable(raw: &str) -> Result<SocketAddr, ProtectError> {
    let bad = |m: String| ProtectError::Param("standby", m);
    if raw.is_empty() || !raw.contains(':') {
        return Err(bad(format!("standby '{raw}' must be HOST:PORT (a standby's link port, 7700 by default)")));
    }
    let addrs: Vec<SocketAddr> =
        raw.to_socket_addrs().map_err(|e| bad(format!("standby '{raw}' does not resolve: {e}")))?.collect();
    let mut last = None;
    for a in &addrs {
        match TcpStream::connect_timeout(a, REACH_TIMEOUT) {
            Ok(_) => return Ok(*a),
            Err(e) => last = Some(e),
        }
    }
    Err(bad(format!(
        "cannot reach a standby's link at {raw}: {}; nothing was changed",
        last.map_or_else(|| "no address".to_string(), |e| e.to_string())
    )))
}

/// Whether `addr` is one of this host's addresses (loopback, or bindable here).
fn is_local(addr: SocketAddr) -> bool {
    addr.ip().is_loopback() || addr.ip().is_unspecified() || UdpSocket::bind(SocketAddr::new(addr.ip(), 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked() {
        assert!(matches!(reachable("nohost"), Err(ProtectError::Param("standby", m)) if m.contains("HOST:PORT")));
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(reachable(&format!("127.0.0.1:{port}")).unwrap().port(), port);
        drop(l);
        let e = reachable(&format!("127.0.0.1:{port}")).unwrap_err();
        assert!(matches!(&e, ProtectError::Param("standby", m) if m.contains("cannot reach")), "{e:?}");
        assert!(is_local("127.0.0.1:1".parse().unwrap()));
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(own_link(dir.path(), 7700).to_string(), "127.0.0.1:7700");
        std::fs::write(dir.path().join("link.addr"), "0.0.0.0:7700").unwrap();
        assert_eq!(own_link(dir.path(), 7700).to_string(), "127.0.0.1:7700");
        std::fs::write(dir.path().join("link.addr"), "10.1.2.3:7700").unwrap();
        assert_eq!(own_link(dir.path(), 7700).to_string(), "10.1.2.3:7700");
        assert!(!is_local("192.0.2.1:1".parse().unwrap()));
    }
}
