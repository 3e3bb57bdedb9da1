//! Many pairs on one standby, quickly, for tests of the API and the panel at scale: each pair
//! is registered by speaking the real link, as the first start of its agent would (a Hello
//! offering one small disk), and then left (the connection closed), so the standby knows it
//! as a pair whose agent is away. Nothing is copied.

use crate::daemons::Standby;
use crate::link::{RawLink, hello};
use drpair_wire::StandbyMsg;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The disk every registered pair offers.
pub const DISK_SIZE: u64 = 16 << 20;
const CHUNK: u64 = 64 << 10;
/// Connections registering at once.
const WORKERS: usize = 4;

const ROLES: &[&str] = &["web", "db", "app", "cache", "mail", "files", "build", "ldap"];
const SITES: &[&str] = &["fra1", "ams2", "lon1", "nyc3", "sfo2"];

/// The `i`-th pair of `prefix` (from 0): its id, source host and source address.
///
/// Ids are `PREFIX-0001`, `PREFIX-0002`…; hosts look like a fleet's
/// (`db07.ams2.example.net`), addresses are loopback addresses of their own, one /16 per site
/// (`127.11.0.2`), so a search by id, host, role, site or address picks out a real subset.
pub fn pair_at(prefix: &str, i: usize) -> (String, String, Ipv4Addr) {
    let role = ROLES[i % ROLES.len()];
    let site_no = i / ROLES.len() % SITES.len();
    let host = format!("{role}{:02}.{}.example.net", i / (ROLES.len() * SITES.len()) + 1, SITES[site_no]);
    let n = i + 1;
    let byte = |x: usize| u8::try_from(x).expect("at most 62,499 pairs per prefix");
    let addr = Ipv4Addr::new(127, byte(10 + site_no), byte(n / 250), byte(n % 250 + 1));
    (format!("{prefix}-{n:04}"), host, addr)
}

/// Makes `sb` know `n` more pairs, `PREFIX-0001`…`PREFIX-n` ([`pair_at`] names them), each
/// registered over the link from its own address with its own host name and one 16 MiB disk,
/// its agent then gone (the pairs stay as a first Hello leaves them, with no point). Returns
/// their ids.
///
/// The standby must have a link token (started with one: `Standby::start(env, Some(TOKEN))`,
/// whose token file agents present); the link may run TLS (the default) or
/// `--insecure-plaintext`, the connections are secured as it is. Pairs already known are
/// welcomed again, not registered twice.
pub fn register_pairs(sb: &Standby, prefix: &str, n: usize) -> Vec<String> {
    let token_file = sb.token_file.as_ref().expect("register_pairs needs a standby started with a token");
    let token = std::fs::read_to_string(token_file).expect("token file");
    let token = token.lines().next().unwrap_or_default().trim().to_string();
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..WORKERS.min(n) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let (id, host, addr) = pair_at(prefix, i);
                    let disk = format!("/dev/disk/by-id/virtio-{id}");
                    let mut h = hello(&id, Some(&token), &disk, DISK_SIZE, CHUNK);
                    h.host = host;
                    let mut link = RawLink::to_from(sb, addr);
                    match link.hello(h) {
                        StandbyMsg::Welcome { .. } => {}
                        other => panic!("pair {id} from {addr}: the standby answered the Hello with {other:?}"),
                    }
                }
            });
        }
    });
    (0..n).map(|i| pair_at(prefix, i).0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_look_real_and_are_distinct() {
        assert_eq!(pair_at("fleet", 0), ("fleet-0001".into(), "web01.fra1.example.net".into(), [127, 10, 0, 2].into()));
        assert_eq!(pair_at("fleet", 9).1, "db01.ams2.example.net");
        let all: Vec<_> = (0..2000).map(|i| pair_at("fleet", i)).collect();
        let distinct = |f: &dyn Fn(&(String, String, Ipv4Addr)) -> String| {
            all.iter().map(f).collect::<std::collections::HashSet<_>>().len()
        };
        assert_eq!(distinct(&|p| p.0.clone()), 2000);
        assert_eq!(distinct(&|p| p.1.clone()), 2000);
        assert_eq!(distinct(&|p| p.2.to_string()), 2000);
    }
}
