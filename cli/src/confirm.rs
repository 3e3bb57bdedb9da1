//! Warnings and the typed confirmation in front of actions that delete recovery points
//! (`restart`, `start --type reload`, `start --from-point/--from-time`).
//!
//! Invariants: the warning is always printed on stderr, also with `--yes`; without `--yes`
//! nothing is sent to the standby unless the operator typed the pair id; a wrong line, an
//! empty line or end of input aborts with exit code 9 ([`CliError::NotConfirmed`]).

use crate::client::{CliError, Client};
use drpair_types::PairId;
use std::io::{BufRead, IsTerminal, Write};

/// The recovery points of `pair` (`GET /api/v1/pairs/PAIR/points`), counted for the warning.
pub fn count_points(client: &Client, pair: &PairId) -> Result<usize, CliError> {
    let (_, points): (_, Vec<serde_json::Value>) = client.get_json(&format!("/api/v1/pairs/{pair}/points"))?;
    Ok(points.len())
}

/// The warning before a new baseline (`restart`, `start --type reload`): what is deleted,
/// what is copied, and that failover waits for the new baseline.
pub fn rebaseline_warning(pair: &PairId, points: usize, keep_points_until_synced: bool) -> String {
    let these = match points {
        0 => None,
        1 => Some("its 1 recovery point is".to_string()),
        n => Some(format!("its {n} recovery points are")),
    };
    let fate = match (these, keep_points_until_synced) {
        (None, _) => format!("pair {pair} has no recovery points yet, so none are deleted"),
        (Some(these), false) => format!("every recovery point of pair {pair} is deleted: {these} deleted now"),
        (Some(these), true) => {
            format!("{these} kept read-only until the new baseline of pair {pair} completes, then deleted")
        }
    };
    format!(
        "warning: {fate}\n\
         warning: everything is copied again: every disk of pair {pair} is read and shipped as a new baseline\n\
         warning: the standby is not ready for failover until the new baseline completes"
    )
}

/// The warning before a replay from an older position (`start --from-point/--from-time`).
pub fn replay_warning(pair: &PairId) -> String {
    format!(
        "warning: recovery points of pair {pair} after the from-position are deleted; \
         the agent ships again every chunk changed since then"
    )
}

/// Asks for the pair id on `prompt` and reads one line of `input`; only the exact pair id
/// (surrounding blanks ignored) confirms. `echo` repeats the line read after the prompt, for
/// input that a terminal did not echo (a pipe), so the prompt's line is complete in a log.
pub fn confirm(pair: &PairId, input: &mut dyn BufRead, prompt: &mut dyn Write, echo: bool) -> Result<(), CliError> {
    let _ = write!(prompt, "Type the pair id ({pair}) to confirm: ");
    let _ = prompt.flush();
    let mut line = String::new();
    let read = input.read_line(&mut line);
    let got = line.trim_end_matches(['\r', '\n']);
    if echo || !line.ends_with('\n') {
        // Also at end of input: end the prompt's line before the error.
        let _ = writeln!(prompt, "{}", if echo { got } else { "" });
    }
    match read {
        Ok(n) if n > 0 && got.trim() == pair.as_str() => Ok(()),
        Ok(_) | Err(_) => Err(CliError::NotConfirmed),
    }
}

/// Prints `warnings` on stderr; unless `yes`, asks for the pair id on stdin-like `input`.
pub fn warn_and_confirm(
    pair: &PairId,
    warnings: &[String],
    yes: bool,
    input: &mut dyn BufRead,
) -> Result<(), CliError> {
    for w in warnings {
        eprintln!("{w}");
    }
    if yes { Ok(()) } else { confirm(pair, input, &mut std::io::stderr(), !std::io::stdin().is_terminal()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::exit;
    use std::io::Cursor;

    fn ask(input: &str) -> (Result<(), CliError>, String) {
        ask_echo(input, false)
    }

    fn ask_echo(input: &str, echo: bool) -> (Result<(), CliError>, String) {
        let pair = PairId::new("web-01").unwrap();
        let mut prompt = Vec::new();
        let result = confirm(&pair, &mut Cursor::new(input.as_bytes()), &mut prompt, echo);
        (result, String::from_utf8(prompt).unwrap())
    }

    #[test]
    fn only_the_pair_id_confirms() {
        for input in ["web-01\n", "  web-01  \n", "web-01\r\n"] {
            let (result, prompt) = ask(input);
            assert!(result.is_ok(), "{input:?}");
            assert_eq!(prompt, "Type the pair id (web-01) to confirm: ");
        }
        let (result, prompt) = ask("web-01");
        assert!(result.is_ok());
        assert_eq!(prompt, "Type the pair id (web-01) to confirm: \n", "last line without newline");
        for input in ["", "\n", "yes\n", "web-0\n", "WEB-01\n", "web-01 please\n", "\nweb-01\n"] {
            let (result, _) = ask(input);
            let err = result.unwrap_err();
            assert_eq!(err.exit_code(), exit::ABORTED, "{input:?}");
            assert_eq!(err.to_string(), "not confirmed; nothing was changed");
        }
    }

    #[test]
    fn piped_answers_are_echoed() {
        let (result, prompt) = ask_echo("web-01\n", true);
        assert!(result.is_ok());
        assert_eq!(prompt, "Type the pair id (web-01) to confirm: web-01\n");
        let (result, prompt) = ask_echo("", true);
        assert_eq!(result.unwrap_err().exit_code(), exit::ABORTED);
        assert_eq!(prompt, "Type the pair id (web-01) to confirm: \n");
    }

    #[test]
    fn yes_skips_the_question() {
        let pair = PairId::new("web-01").unwrap();
        assert!(warn_and_confirm(&pair, &[], true, &mut Cursor::new(&b""[..])).is_ok());
        let err = warn_and_confirm(&pair, &[], false, &mut Cursor::new(&b"no\n"[..])).unwrap_err();
        assert_eq!(err.exit_code(), exit::ABORTED);
    }

    #[test]
    fn warnings_say_what_happens() {
        let pair = PairId::new("web-01").unwrap();
        let w = rebaseline_warning(&pair, 12, false);
        assert!(w.contains("every recovery point of pair web-01 is deleted: its 12 recovery points are deleted now"));
        assert!(w.contains("everything is copied again"), "{w}");
        assert!(w.contains("not ready for failover until the new baseline completes"), "{w}");
        let w = rebaseline_warning(&pair, 1, true);
        assert!(w.contains("its 1 recovery point is kept read-only until the new baseline"), "{w}");
        assert!(w.contains("then deleted"), "{w}");
        let w = rebaseline_warning(&pair, 0, false);
        assert!(w.contains("no recovery points yet"), "{w}");
        assert!(w.lines().all(|l| l.starts_with("warning: ")), "{w}");
        assert!(replay_warning(&pair).contains("after the from-position are deleted"));
    }
}
