//! The agent yields to the server it protects: its disk reads run in a low I/O class
//! (`io_priority`, default idle: served only when the disk is otherwise idle, under a
//! scheduler that honours classes, as BFQ and mq-deadline do) and its hashing and compression
//! at a low CPU priority (`nice`, default 10). Both are set on the process before any thread
//! starts, so every thread inherits them; the systemd unit sets the same
//! (`IOSchedulingClass=idle`, `Nice=10`).

use std::fmt;

/// An I/O scheduling class for the agent's reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoPriority {
    /// Leave the class the process was started with.
    Inherit,
    /// Only when no other process uses the disk.
    Idle,
    /// The normal class at a level, 0 (highest) ..= 7 (lowest).
    BestEffort(u8),
}

impl IoPriority {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "inherit" => Ok(Self::Inherit),
            "idle" => Ok(Self::Idle),
            "best-effort" => Ok(Self::BestEffort(4)),
            t => match t.strip_prefix("best-effort:").map(str::parse::<u8>) {
                Some(Ok(n)) if n <= 7 => Ok(Self::BestEffort(n)),
                Some(_) => Err(format!("'{t}': the best-effort level is 0..=7 (7 lowest)")),
                None => Err(format!("'{t}' is not an I/O class: idle, best-effort, best-effort:N (0..=7) or inherit")),
            },
        }
    }
}

impl fmt::Display for IoPriority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inherit => f.write_str("inherit"),
            Self::Idle => f.write_str("idle"),
            Self::BestEffort(n) => write!(f, "best-effort:{n}"),
        }
    }
}

/// Sets the I/O class and niceness of the calling thread (and so of every thread it starts
/// afterwards). Failures are logged, never fatal: an agent at normal priority still protects.
pub fn apply(io: IoPriority, nice: i32) {
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    const CLASS_SHIFT: libc::c_int = 13;
    let value = match io {
        IoPriority::Inherit => None,
        IoPriority::Idle => Some(3 << CLASS_SHIFT),
        IoPriority::BestEffort(n) => Some((2 << CLASS_SHIFT) | libc::c_int::from(n)),
    };
    if let Some(v) = value {
        // SAFETY: ioprio_set takes three integers and touches no memory of ours.
        let r = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, v) };
        if r != 0 {
            tracing::warn!("setting the agent's I/O class to {io}: {}", std::io::Error::last_os_error());
        }
    }
    // SAFETY: setpriority takes integers only.
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    if r != 0 {
        tracing::warn!("setting the agent's niceness to {nice}: {}", std::io::Error::last_os_error());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The I/O class and niceness the calling thread runs with.
    fn current() -> (i64, i32) {
        // SAFETY: ioprio_get takes integers only.
        let io = unsafe { libc::syscall(libc::SYS_ioprio_get, 1, 0) };
        // SAFETY: getpriority takes integers only.
        let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        (io, nice)
    }

    #[test]
    fn classes_parse() {
        assert_eq!(IoPriority::parse("idle"), Ok(IoPriority::Idle));
        assert_eq!(IoPriority::parse("best-effort"), Ok(IoPriority::BestEffort(4)));
        assert_eq!(IoPriority::parse("best-effort:7"), Ok(IoPriority::BestEffort(7)));
        assert_eq!(IoPriority::parse("inherit"), Ok(IoPriority::Inherit));
        assert!(IoPriority::parse("best-effort:8").unwrap_err().contains("0..=7"));
        assert!(IoPriority::parse("realtime").is_err());
    }

    #[test]
    fn a_thread_takes_the_class_and_niceness() {
        std::thread::spawn(|| {
            apply(IoPriority::Idle, 5);
            let (io, nice) = current();
            assert_eq!(io >> 13, 3, "idle class");
            assert_eq!(nice, 5);
            // Threads started afterwards inherit both.
            std::thread::spawn(|| {
                let (io, nice) = current();
                assert_eq!((io >> 13, nice), (3, 5));
            })
            .join()
            .unwrap();
        })
        .join()
        .unwrap();
    }
}
