//! Compression that adapts to the link.
//!
//! Every few seconds the shipping pipeline reports a [`LinkSample`] for the window since the
//! last one. Two shares of time decide:
//!
//! - `link_busy = send_blocked / elapsed`: how long the sender waited for the link (socket
//!   buffer full). High means the link is the bottleneck: spending CPU to send fewer bytes pays.
//! - `cpu_busy = compress_busy / (elapsed × workers)`: how much of the workers' time went into
//!   zstd. High means compression is the bottleneck: a cheaper level ships more per second.
//!
//! | verdict     | condition                                           | action                 |
//! |-------------|-----------------------------------------------------|------------------------|
//! | `Idle`      | window under 100 ms, or nothing shipped             | stay; forget the streak|
//! | `LinkBound` | `link_busy ≥ 0.5` and `cpu_busy < 0.6`              | one level up           |
//! | `CpuBound`  | `cpu_busy ≥ 0.8` and `link_busy < 0.2`              | one level down (to Off)|
//! | `CpuBound`  | under 15% of the host's CPU time was idle or ours (`host_free`) | one level down |
//! | `Balanced`  | anything else, and `LinkBound` on data that does not compress (ratio ≥ 0.95 at a zstd level: more effort will not help) | stay |
//!
//! The host rule comes first: the protected server's own work needs its CPUs more than the
//! link needs fewer bytes, so a busy host takes compression down whatever the link says.
//!
//! **The measured rate has the last word.** The verdicts read the pipeline's waits, which can
//! mislead: with the standby on the same host (or a standby whose CPU is the limit), sending
//! waits on the standby's ingest, which looks like a slow link, yet compressing only adds CPU
//! on both ends. So every non-idle window also gives the level's rate, raw bytes handed to
//! compression per second, and:
//!
//! - after a change, the first window at the new level is not judged (frames of the old level
//!   are still in flight); the next one is compared with the old level's rate, and if it is
//!   more than [`AdaptiveLevel::WORSE`] slower the level goes straight back and the tried level
//!   is barred for [`AdaptiveLevel::BAR_SAMPLES`] windows;
//! - a confirmed verdict never moves to a barred level, nor to one measured in the last
//!   [`AdaptiveLevel::RATE_FRESH`] windows as slower than the current one;
//! - a confirmed `LinkBound` that cannot go up (the level above is barred or known slower, or
//!   there is none) tries the level below, when that level has no fresh rate: sending that
//!   waits although more compression is slower means the wait is not the link's bytes, and
//!   less compression may be the faster choice (it is judged as any change).
//!
//! - `auto` starts at zstd 1 and, after [`AdaptiveLevel::OPENING_WINDOWS`] windows there,
//!   tries off once ([`AdaptiveLevel::with_opening_probe`]), judged as any change, in short
//!   windows until it is decided ([`AdaptiveLevel::opening`]): the
//!   verdicts alone reach off only through `CpuBound`, which a receiver-bound pipeline never
//!   gives, so without it a first copy on a fast link spent most of its time compressing for
//!   nothing (9.19 s against 8.24 s for off on loopback).
//!
//! With compression never shipping more than the raw bytes (a chunk zstd does not shrink goes
//! raw), `auto` therefore ships at most what `off` ships and runs at about the rate of the
//! better of its levels on that link, paying at most a few windows at the worse one per
//! [`AdaptiveLevel::BAR_SAMPLES`].
//!
//! Levels: Off, zstd 1, zstd 3, zstd 6 ([`LEVELS`]). Higher zstd levels cost several times
//! the CPU for a few percent on disk data, so 6 is the top. A level changes only after the
//! same verdict in [`AdaptiveLevel::CONFIRM`] consecutive samples, so one odd window does not
//! flip it. The machine is pure: no clocks, no I/O; the caller measures.

use std::time::Duration;

use drpair_codec::Compression;

/// The levels the machine moves between, cheapest first.
pub const LEVELS: [Compression; 4] =
    [Compression::Off, Compression::Zstd(1), Compression::Zstd(3), Compression::Zstd(6)];

const MIN_WINDOW: Duration = Duration::from_millis(100);
const LINK_BOUND: f64 = 0.5;
const CPU_IDLE_ENOUGH: f64 = 0.6;
const CPU_BOUND: f64 = 0.8;
const LINK_IDLE_ENOUGH: f64 = 0.2;
const INCOMPRESSIBLE: f64 = 0.95;
const HOST_BUSY_FREE: f64 = 0.15;

/// One measurement window of the shipping pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LinkSample {
    /// Raw chunk bytes handed to compression (zero chunks and dedup hits excluded).
    pub bytes_in: u64,
    /// Bytes of those chunks as shipped (compressed or raw).
    pub bytes_out: u64,
    /// Time spent in zstd, summed over all workers.
    pub compress_busy: Duration,
    /// Time the sender waited for the link.
    pub send_blocked: Duration,
    /// Length of the window.
    pub elapsed: Duration,
    /// Share of the host's CPU time over the window that was idle or the agent's own (None:
    /// not measured): what the protected server's other work left.
    pub host_free: Option<f64>,
}

/// What a sample says about the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Idle,
    LinkBound,
    CpuBound,
    Balanced,
}

/// Classifies one sample (see the module table). `workers` = compression threads (≥ 1).
pub fn classify(s: &LinkSample, workers: u32, level: Compression) -> Verdict {
    if s.elapsed < MIN_WINDOW || s.bytes_in == 0 {
        return Verdict::Idle;
    }
    let elapsed = s.elapsed.as_secs_f64();
    let link_busy = s.send_blocked.as_secs_f64() / elapsed;
    let cpu_busy = s.compress_busy.as_secs_f64() / (elapsed * f64::from(workers.max(1)));
    let ratio = s.bytes_out as f64 / s.bytes_in as f64;
    if s.host_free.is_some_and(|free| free < HOST_BUSY_FREE) {
        Verdict::CpuBound
    } else if link_busy >= LINK_BOUND && cpu_busy < CPU_IDLE_ENOUGH {
        if level != Compression::Off && ratio >= INCOMPRESSIBLE { Verdict::Balanced } else { Verdict::LinkBound }
    } else if cpu_busy >= CPU_BOUND && link_busy < LINK_IDLE_ENOUGH {
        Verdict::CpuBound
    } else {
        Verdict::Balanced
    }
}

/// The level index after a confirmed verdict.
pub fn next_index(index: usize, verdict: Verdict) -> usize {
    match verdict {
        Verdict::LinkBound => (index + 1).min(LEVELS.len() - 1),
        Verdict::CpuBound => index.saturating_sub(1),
        Verdict::Idle | Verdict::Balanced => index,
    }
}

/// A level tried after another: judged against the other's rate once settled.
#[derive(Debug, Clone, Copy)]
struct Trial {
    from: usize,
    /// Windows seen at the new level so far (the first is not judged).
    windows: u32,
}

/// The adaptive compression level of one link.
#[derive(Debug, Clone)]
pub struct AdaptiveLevel {
    index: usize,
    workers: u32,
    /// Last non-idle verdict and how many samples in a row gave it.
    streak: Option<(Verdict, u32)>,
    /// Non-idle windows seen.
    windows: u64,
    /// Per level: the last measured rate (raw bytes per second) and the window it was seen in.
    rates: [Option<(f64, u64)>; LEVELS.len()],
    /// Per level: barred until this window.
    barred_until: [u64; LEVELS.len()],
    trial: Option<Trial>,
    /// The opening probe of the level below the start is still to come (see
    /// [`AdaptiveLevel::with_opening_probe`]).
    opening_probe: bool,
    /// The opening probe is not decided yet: the caller samples in short windows.
    opening: bool,
}

impl AdaptiveLevel {
    /// Consecutive samples with the same verdict needed to change level.
    pub const CONFIRM: u32 = 2;
    /// A level whose rate is below this share of the level it replaced goes back at once.
    pub const WORSE: f64 = 0.95;
    /// Windows a level that proved slower stays barred.
    pub const BAR_SAMPLES: u64 = 60;
    /// A rate older than this many windows is not compared with.
    pub const RATE_FRESH: u64 = 120;

    /// Starts at the highest level of [`LEVELS`] not above `start`.
    pub fn new(start: Compression, workers: u32) -> Self {
        let rank = |c: Compression| match c {
            Compression::Off => i32::MIN,
            Compression::Zstd(l) => l,
        };
        let index = LEVELS.iter().rposition(|&l| rank(l) <= rank(start)).unwrap_or(0);
        AdaptiveLevel {
            index,
            workers: workers.max(1),
            streak: None,
            windows: 0,
            rates: [None; LEVELS.len()],
            barred_until: [0; LEVELS.len()],
            trial: None,
            opening_probe: false,
            opening: false,
        }
    }

    /// Whether the opening probe is still undecided: the caller should sample in short
    /// windows then, so that a first copy spends as little as possible at the worse level.
    pub fn opening(&self) -> bool {
        self.opening
    }

    /// Windows at the start level before the opening probe (the first one holds the
    /// pipeline's start: connecting, filling the queues).
    pub const OPENING_WINDOWS: u64 = 2;

    /// After [`Self::OPENING_WINDOWS`] non-idle windows at the start level, tries the level
    /// below it once, judged as any change. The verdicts can only find a level below through
    /// `CpuBound`, which a standby sharing the CPU (or a fast link whose receiver is the limit)
    /// never gives, and the probe of [`Self::observe`] for a `LinkBound` that cannot go up
    /// comes only after a climb was tried and undone: on a first copy of a few GiB that is
    /// most of the copy. Probing first costs at most two windows at the slower level.
    #[must_use]
    pub fn with_opening_probe(mut self) -> Self {
        self.opening_probe = self.index > 0;
        self.opening = self.opening_probe;
        self
    }

    /// Moves to level `next`, as a trial judged against the current level's rate.
    fn move_to(&mut self, next: usize, why: &str) {
        tracing::info!(from = ?self.level(), to = ?LEVELS[next], why, "compression level changed");
        self.trial = Some(Trial { from: self.index, windows: 0 });
        self.index = next;
        self.streak = None;
    }

    /// Whether level `next` was measured recently moving fewer bytes per second than the
    /// current level (by more than [`Self::WORSE`]): no need to try it again yet.
    fn known_slower(&self, next: usize) -> bool {
        let fresh = |r: Option<(f64, u64)>| r.filter(|&(_, at)| self.windows.saturating_sub(at) <= Self::RATE_FRESH);
        match (fresh(self.rates[next]), fresh(self.rates[self.index])) {
            (Some((there, _)), Some((here, _))) => there < here * Self::WORSE,
            _ => false,
        }
    }

    /// Whether level `n` has a rate measured in the last [`Self::RATE_FRESH`] windows.
    fn rate_fresh(&self, n: usize) -> bool {
        self.rates[n].is_some_and(|(_, at)| self.windows.saturating_sub(at) <= Self::RATE_FRESH)
    }

    /// Records the rate of a non-idle window; after a change, judges the new level against
    /// the one it replaced. True when the level went back.
    fn judge(&mut self, s: &LinkSample) -> bool {
        let rate = s.bytes_in as f64 / s.elapsed.as_secs_f64();
        let Some(mut trial) = self.trial else {
            self.rates[self.index] = Some((rate, self.windows));
            return false;
        };
        trial.windows += 1;
        self.trial = Some(trial);
        if trial.windows < 2 {
            // Frames of the previous level are still in flight: not judged.
            return false;
        }
        self.trial = None;
        self.rates[self.index] = Some((rate, self.windows));
        let before = self.rates[trial.from].filter(|&(_, at)| self.windows.saturating_sub(at) <= Self::RATE_FRESH);
        match before {
            Some((old, _)) if rate < old * Self::WORSE => {
                tracing::info!(
                    tried = ?self.level(),
                    back_to = ?LEVELS[trial.from],
                    rate_mb_s = rate / 1e6,
                    before_mb_s = old / 1e6,
                    "compression level moved fewer bytes per second than the one before: going back"
                );
                self.barred_until[self.index] = self.windows + Self::BAR_SAMPLES;
                self.index = trial.from;
                self.streak = None;
                true
            }
            _ => false,
        }
    }

    /// The current level.
    pub fn level(&self) -> Compression {
        LEVELS[self.index]
    }

    /// Feeds one sample; returns the (possibly new) level.
    pub fn observe(&mut self, s: &LinkSample) -> Compression {
        let verdict = classify(s, self.workers, self.level());
        let count = match (verdict, self.streak) {
            (Verdict::Idle, _) => {
                self.streak = None;
                return self.level();
            }
            (v, Some((last, n))) if v == last => n + 1,
            _ => 1,
        };
        self.windows += 1;
        let went_back = self.judge(s);
        if self.opening && !self.opening_probe && self.trial.is_none() {
            // The opening probe was judged (or never moved).
            self.opening = false;
        }
        if went_back {
            return self.level();
        }
        self.streak = Some((verdict, count));
        if self.opening_probe && self.trial.is_none() && self.windows >= Self::OPENING_WINDOWS {
            self.opening_probe = false;
            let down = self.index - 1;
            if self.barred_until[down] <= self.windows && !self.rate_fresh(down) {
                self.move_to(down, "opening probe of the level below the start");
                return self.level();
            }
            self.opening = false;
        }
        if count >= Self::CONFIRM && self.trial.is_none() {
            let next = next_index(self.index, verdict);
            if next != self.index && self.barred_until[next] <= self.windows && !self.known_slower(next) {
                self.move_to(next, &format!("{verdict:?}"));
            } else if verdict == Verdict::LinkBound && self.index > 0 {
                // Sending waits, yet more compression proved slower (or there is none): the
                // wait is not the link's bytes (a standby sharing the CPU, say). Less
                // compression may be faster: tried once its rate is unknown or stale, judged
                // as any change.
                let down = self.index - 1;
                if self.barred_until[down] <= self.windows && !self.rate_fresh(down) {
                    self.move_to(down, "LinkBound, but the level above proved slower: probing the one below");
                }
            }
        }
        self.level()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::*;

    #[allow(clippy::cast_possible_truncation)] // test fixture: ratio in 0..=1
    fn sample(link_busy: f64, cpu_busy_per_worker: f64, ratio: f64) -> LinkSample {
        let elapsed = Duration::from_secs(5);
        LinkSample {
            bytes_in: 1_000_000,
            bytes_out: (1_000_000.0 * ratio) as u64,
            compress_busy: elapsed.mul_f64(cpu_busy_per_worker * 2.0), // 2 workers
            send_blocked: elapsed.mul_f64(link_busy),
            elapsed,
            host_free: None,
        }
    }

    #[test]
    fn classify_table() {
        let z3 = Compression::Zstd(3);
        let off = Compression::Off;
        #[rustfmt::skip]
        let table = [
            // link_busy, cpu_busy, ratio, level, verdict
            (0.9, 0.1, 1.0, off, LinkBound),  // slow link, nothing compressed yet: try compressing
            (0.9, 0.3, 0.5, z3,  LinkBound),  // slow link, CPU to spare, data compresses: more
            (0.9, 0.3, 0.98, z3, Balanced),   // slow link but data does not compress: stay
            (0.9, 0.9, 0.5, z3,  Balanced),   // both saturated: stay
            (0.0, 0.95, 0.5, z3, CpuBound),   // fast link, CPU saturated: less
            (0.3, 0.95, 0.5, z3, Balanced),   // link somewhat busy: stay
            (0.1, 0.5, 0.5, z3,  Balanced),   // source-bound (neither busy): stay
            (0.5, 0.59, 0.5, z3, LinkBound),  // thresholds inclusive / exclusive
            (0.19, 0.8, 0.5, z3, CpuBound),
        ];
        for (i, &(link, cpu, ratio, level, want)) in table.iter().enumerate() {
            assert_eq!(classify(&sample(link, cpu, ratio), 2, level), want, "row {i}");
        }
        let short = LinkSample { elapsed: Duration::from_millis(50), ..sample(0.9, 0.1, 1.0) };
        assert_eq!(classify(&short, 2, off), Idle);
        let empty = LinkSample { bytes_in: 0, bytes_out: 0, ..sample(0.9, 0.1, 1.0) };
        assert_eq!(classify(&empty, 2, off), Idle);
        // A busy host takes compression down, even on a slow link.
        let busy = LinkSample { host_free: Some(0.1), ..sample(0.9, 0.3, 0.5) };
        assert_eq!(classify(&busy, 2, z3), CpuBound);
        let calm = LinkSample { host_free: Some(0.6), ..sample(0.9, 0.3, 0.5) };
        assert_eq!(classify(&calm, 2, z3), LinkBound);
    }

    #[test]
    fn a_level_that_moves_fewer_bytes_goes_back_and_is_barred() {
        use Compression::*;
        // Sending waits (it looks like a slow link), but at zstd 1 the pipeline moves 30% fewer
        // raw bytes per second than at off: the standby on the same host is the limit.
        let at = |level: Compression| {
            let s = sample(0.9, 0.1, 0.5);
            if level == Off { s } else { LinkSample { bytes_in: 700_000, bytes_out: 350_000, ..s } }
        };
        let mut a = AdaptiveLevel::new(Off, 2);
        let mut levels = vec![];
        for _ in 0..8 {
            let l = a.level();
            levels.push(a.observe(&at(l)));
        }
        // Two windows to confirm, one to settle, one judged: back to off, and it stays there.
        assert_eq!(levels, [Off, Zstd(1), Zstd(1), Off, Off, Off, Off, Off]);
        // Barred, then known slower while its rate is fresh: tried again only after that.
        let retried = (9..400u64).find(|_| {
            let l = a.level();
            a.observe(&at(l)) != Off
        });
        assert!(retried.is_some_and(|w| w > 4 + AdaptiveLevel::RATE_FRESH), "{retried:?}");
        // A level as fast as the one before stays.
        let mut b = AdaptiveLevel::new(Off, 2);
        let levels: Vec<_> = (0..4).map(|_| b.observe(&sample(0.9, 0.1, 0.5))).collect();
        assert_eq!(levels, [Off, Zstd(1), Zstd(1), Zstd(3)]);
    }

    #[test]
    fn a_wait_that_more_compression_does_not_help_probes_less() {
        use Compression::*;
        // Sending waits at every level (the standby shares the host); raw bytes per second:
        // off 1.3 MB/s, zstd 1 1.0, zstd 3 0.6 (5 s windows).
        let at = |level: Compression| {
            let bytes_in = match level {
                Off => 6_500_000,
                Zstd(1) => 5_000_000,
                _ => 3_000_000,
            };
            LinkSample { bytes_in, bytes_out: bytes_in / 2, ..sample(0.9, 0.1, 0.5) }
        };
        let mut a = AdaptiveLevel::new(Zstd(1), 2);
        let levels: Vec<_> = (0..12)
            .map(|_| {
                let l = a.level();
                a.observe(&at(l))
            })
            .collect();
        // Up to zstd 3 (confirm, settle, judge), back; then the probe of off, which stays.
        assert_eq!(levels, [Zstd(1), Zstd(3), Zstd(3), Zstd(1), Zstd(1), Off, Off, Off, Off, Off, Off, Off]);
        // Off slower than zstd 1 instead: the probe goes back and zstd 1 holds.
        let slower_off = |level: Compression| {
            let s = at(level);
            if level == Off { LinkSample { bytes_in: 3_500_000, bytes_out: 3_500_000, ..s } } else { s }
        };
        let mut b = AdaptiveLevel::new(Zstd(1), 2);
        let levels: Vec<_> = (0..14)
            .map(|_| {
                let l = b.level();
                b.observe(&slower_off(l))
            })
            .collect();
        assert_eq!(levels[5..8], [Off, Off, Zstd(1)], "{levels:?}");
        assert!(levels[7..].iter().all(|&l| l == Zstd(1)), "{levels:?}");
    }

    #[test]
    fn the_opening_probe_finds_the_faster_level_below_the_start() {
        use Compression::*;
        // Loopback: sending waits on the standby sharing the host; off moves 1.3× the bytes.
        let at = |level: Compression| {
            let bytes_in = if level == Off { 6_500_000 } else { 5_000_000 };
            LinkSample { bytes_in, bytes_out: bytes_in / 2, ..sample(0.9, 0.1, 0.5) }
        };
        let mut a = AdaptiveLevel::new(Zstd(1), 2).with_opening_probe();
        let levels: Vec<_> = (0..10)
            .map(|_| {
                let l = a.level();
                a.observe(&at(l))
            })
            .collect();
        // Two windows at zstd 1, the probe (settle, judge): off stays, and the LinkBound
        // verdicts do not climb back to the level known slower.
        assert_eq!(levels, [Zstd(1), Off, Off, Off, Off, Off, Off, Off, Off, Off]);
        // A slow link where zstd 1 moves twice the raw bytes: the probe goes back at once.
        let slow_link = |level: Compression| {
            let bytes_in = if level == Off { 2_500_000 } else { 5_000_000 };
            LinkSample { bytes_in, bytes_out: bytes_in / 2, ..sample(0.9, 0.1, 0.5) }
        };
        let mut b = AdaptiveLevel::new(Zstd(1), 2).with_opening_probe();
        let levels: Vec<_> = (0..5)
            .map(|_| {
                let l = b.level();
                b.observe(&slow_link(l))
            })
            .collect();
        assert_eq!(levels[..4], [Zstd(1), Off, Off, Zstd(1)], "{levels:?}");
        // Off is barred after that: the climb goes on upwards.
        assert_eq!(levels[4], Zstd(1));
        // Starting at off there is nothing below to probe.
        let c = AdaptiveLevel::new(Off, 2).with_opening_probe();
        assert!(!c.opening_probe && !c.opening());
        // Short windows last until the probe is judged: two at zstd 1, two at off.
        let mut d = AdaptiveLevel::new(Zstd(1), 2).with_opening_probe();
        let opening: Vec<bool> = (0..6)
            .map(|_| {
                let l = d.level();
                d.observe(&at(l));
                d.opening()
            })
            .collect();
        assert_eq!(opening, [true, true, true, false, false, false]);
    }

    #[test]
    fn next_index_table() {
        for (index, verdict, want) in
            [(0, LinkBound, 1), (3, LinkBound, 3), (2, CpuBound, 1), (0, CpuBound, 0), (2, Balanced, 2), (2, Idle, 2)]
        {
            assert_eq!(next_index(index, verdict), want, "{index} {verdict:?}");
        }
    }

    #[test]
    fn start_level_snaps_down() {
        for (start, want) in [
            (Compression::Off, Compression::Off),
            (Compression::Zstd(1), Compression::Zstd(1)),
            (Compression::Zstd(5), Compression::Zstd(3)),
            (Compression::Zstd(19), Compression::Zstd(6)),
            (Compression::Zstd(-5), Compression::Off),
        ] {
            assert_eq!(AdaptiveLevel::new(start, 1).level(), want, "{start:?}");
        }
    }

    #[test]
    fn slow_link_climbs_fast_link_descends_with_hysteresis() {
        let mut a = AdaptiveLevel::new(Compression::Off, 2);
        let slow = sample(0.9, 0.1, 0.5);
        let fast = sample(0.0, 0.95, 0.5);
        let levels: Vec<_> = (0..8).map(|_| a.observe(&slow)).collect();
        use Compression::*;
        assert_eq!(levels, [Off, Zstd(1), Zstd(1), Zstd(3), Zstd(3), Zstd(6), Zstd(6), Zstd(6)]);
        // One odd sample does not move it; an idle window resets the streak.
        assert_eq!(a.observe(&fast), Zstd(6));
        assert_eq!(a.observe(&LinkSample::default()), Zstd(6));
        assert_eq!(a.observe(&fast), Zstd(6));
        assert_eq!(a.observe(&fast), Zstd(3));
        assert_eq!(a.observe(&fast), Zstd(3));
        assert_eq!(a.observe(&fast), Zstd(1));
        assert_eq!(a.observe(&fast), Zstd(1));
        assert_eq!(a.observe(&fast), Off);
        assert_eq!(a.observe(&fast), Off);
        assert_eq!(a.observe(&fast), Off);
        // Alternating verdicts never confirm.
        for _ in 0..5 {
            a.observe(&slow);
            a.observe(&sample(0.3, 0.3, 0.5));
        }
        assert_eq!(a.level(), Off);
    }
}
