//! What `drpaird` does for the service manager (systemd): the notify protocol of
//! `Type=notify` units, watchdog pings, and log lines that journald files under their level.
//!
//! Invariants:
//! - nothing here acts unless the service manager asked for it: without `NOTIFY_SOCKET` every
//!   notification is a no-op, without `WATCHDOG_USEC` no ping is sent, and unless
//!   `JOURNAL_STREAM` names our stderr the logs keep their terminal format;
//! - `READY=1` is sent by the caller, once, only when the daemon serves (the standby: both
//!   listeners bound; the agent: tracking started), so `systemctl start` returns only then;
//! - `STOPPING=1` is sent as soon as a stop signal arrives, before the daemon winds down;
//! - a failed notification is logged, never fatal: the daemon works the same without systemd.

use sd_notify::NotifyState;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The daemon serves: `systemctl start` returns, `systemctl status` shows `status`.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A line for `systemctl status`.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// A stop was asked for; the daemon is winding down.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("cannot notify the service manager of {states:?}: {e}");
    }
}

/// How often to ping for a watchdog period: half of it, as systemd recommends.
fn ping_interval(period: Duration) -> Option<Duration> {
    (!period.is_zero()).then(|| period / 2)
}

/// With `WatchdogSec=` set on the unit, pings `WATCHDOG=1` at half the period from a task of
/// the current tokio runtime: a runtime that stops running tasks stops pinging and systemd
/// restarts the daemon. Returns `None` (and does nothing) when no watchdog is asked for.
pub fn spawn_watchdog() -> Option<tokio::task::JoinHandle<()>> {
    let period = sd_notify::watchdog_enabled()?;
    let every = ping_interval(period)?;
    tracing::info!("systemd watchdog: {period:?}, pinging every {every:?}");
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            send(&[NotifyState::Watchdog]);
        }
    }))
}

/// Whether stderr is a stream into the journal: systemd then sets `JOURNAL_STREAM` to the
/// `DEVICE:INODE` of that stream (a variable inherited from elsewhere names another file).
pub fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else { return false };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else { return false };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else { return false };
    let Ok(meta) = std::fs::File::from(fd).metadata() else { return false };
    dev.parse() == Ok(meta.dev()) && ino.parse() == Ok(meta.ino())
}

/// Syslog priority of a tracing level, as journald reads it from a `<N>` line prefix.
fn syslog_priority(level: Level) -> u8 {
    if level == Level::ERROR {
        3
    } else if level == Level::WARN {
        4
    } else if level == Level::INFO {
        6
    } else {
        7
    }
}

/// An event format that starts each event with its syslog priority (`<4>` for a warning), so
/// journald stores the line with that priority (`journalctl -p warning` finds it) and strips
/// the prefix. The wrapped format writes the rest.
pub struct JournalPriority<F>(pub F);

impl<S, N, F> FormatEvent<S, N> for JournalPriority<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        write!(writer, "<{}>", syslog_priority(*event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_at_half_the_period() {
        assert_eq!(ping_interval(Duration::from_secs(120)), Some(Duration::from_secs(60)));
        assert_eq!(ping_interval(Duration::from_micros(3)), Some(Duration::from_nanos(1500)));
        assert_eq!(ping_interval(Duration::ZERO), None);
    }

    #[test]
    fn priorities_follow_syslog() {
        let got: Vec<u8> =
            [Level::ERROR, Level::WARN, Level::INFO, Level::DEBUG, Level::TRACE].map(syslog_priority).to_vec();
        assert_eq!(got, [3, 4, 6, 7, 7]);
    }

    #[test]
    fn journal_lines_carry_the_priority() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("buf").extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || out.clone())
            .event_format(JournalPriority(tracing_subscriber::fmt::format().without_time().with_ansi(false)))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(pair = "web-01", "link down");
            tracing::info!("serving");
        });
        let text = String::from_utf8(buf.0.lock().expect("buf").clone()).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("<4>") && lines[0].contains("link down") && lines[0].contains("web-01"), "{text}");
        assert!(lines[1].starts_with("<6>") && lines[1].contains("serving"), "{text}");
    }
}
