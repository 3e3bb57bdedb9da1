//! `drpair tasks list|show|log`: the standby's long operations (verify, online verify, dump
//! load, failover, failback, prune, a restart's baseline, drill start) as tasks with an id,
//! progress, state and a log of their steps.

use crate::client::{CliError, Client};
use crate::output::{self, Block, OutputFormat, Table};
use crate::poll::{self, Seen};
use clap::{Args, Subcommand};
use drpair_types::{PairId, TaskId, TaskInfo, TaskList, TaskLog, TaskState};
use std::time::Duration;

#[derive(Debug, Args)]
#[command(
    about = "List the standby's long operations and read their logs",
    long_about = "Every long operation of the standby is a task: stored-point verification, online \
        verify, dump load, failover, failback, prune, a restart's baseline copy and drill start. \
        A task has an id, a kind, the pair it works on, who started it, its start and end times, \
        its progress, its state (running, ok, failed) and a log of its steps. The standby keeps \
        the newest 500 across restarts; a task that was running when the standby stopped is \
        recorded as failed.",
    after_help = "Examples:\n  drpair tasks list --pair web-01\n  drpair tasks list --running\n  \
        drpair tasks show 42 --wait\n  drpair tasks log 42 --follow"
)]
pub struct TasksArgs {
    #[command(subcommand)]
    pub cmd: TasksCmd,
}

#[derive(Debug, Subcommand)]
pub enum TasksCmd {
    /// List tasks, newest first
    List {
        /// Only this pair's tasks
        #[arg(long, value_name = "PAIR")]
        pair: Option<PairId>,
        /// Only running tasks
        #[arg(long)]
        running: bool,
    },
    /// Show one task; with --wait, follow it to its end (exit 1 if it failed)
    Show {
        #[arg(value_name = "TASK")]
        id: TaskId,
        /// Follow the task with a progress bar until it ends
        #[arg(long)]
        wait: bool,
    },
    /// Print a task's log; with --follow, keep printing until the task ends
    Log {
        #[arg(value_name = "TASK")]
        id: TaskId,
        /// Keep printing new lines until the task ends
        #[arg(long)]
        follow: bool,
    },
}

/// How often a followed task is polled.
const EVERY: Duration = Duration::from_millis(500);

pub fn run(client: &Client, output: OutputFormat, args: &TasksArgs) -> Result<(), CliError> {
    match &args.cmd {
        TasksCmd::List { pair, running } => {
            let mut path = String::from("/api/v1/tasks");
            let mut sep = '?';
            if let Some(p) = pair {
                path.push_str(&format!("{sep}pair={p}"));
                sep = '&';
            }
            if *running {
                path.push_str(&format!("{sep}running=true"));
            }
            let (raw, list): (_, TaskList) = client.get_json(&path)?;
            output::answer(output, &raw, || render_list(&list.tasks));
            Ok(())
        }
        TasksCmd::Show { id, wait } => {
            let path = format!("/api/v1/tasks/{id}");
            let first: (serde_json::Value, TaskInfo) = client.get_json(&path)?;
            let (raw, task) = if *wait {
                poll::follow(client, output, &path, &format!("task {id}"), first, EVERY, seen)?
            } else {
                first
            };
            if task.state == TaskState::Failed && *wait {
                return Err(outcome(&raw, &task));
            }
            output::answer(output, &raw, || render_one(&task));
            Ok(())
        }
        TasksCmd::Log { id, follow } => print_log(client, output, *id, *follow),
    }
}

fn seen(t: &TaskInfo) -> Seen {
    Seen::progress(t.state.is_over(), t.progress_percent, &t.message)
}

/// A followed task that failed is an error for scripts (exit 1; the task printed as is with
/// `--output json`).
fn outcome(raw: &serde_json::Value, t: &TaskInfo) -> CliError {
    CliError::JobOutcome {
        damage: false,
        message: format!("task {} ({}) on pair {} failed: {}", t.id, t.kind, t.pair, t.message),
        status: raw.clone(),
    }
}

fn print_log(client: &Client, output: OutputFormat, id: TaskId, follow: bool) -> Result<(), CliError> {
    let mut from = 0u64;
    loop {
        let (raw, log): (_, TaskLog) = client.get_json(&format!("/api/v1/tasks/{id}/log?from={from}"))?;
        match output {
            OutputFormat::Json => output::emit(&output::to_json(&raw)),
            OutputFormat::Text => output::emit(&render_lines(&log)),
        }
        from = log.from + log.lines.len() as u64;
        if !follow || log.state.is_over() {
            return Ok(());
        }
        std::thread::sleep(EVERY);
    }
}

fn render_lines(log: &TaskLog) -> String {
    log.lines.iter().map(|l| format!("{}  {}\n", output::format_time(l.unix_ms), l.text)).collect()
}

fn render_list(tasks: &[TaskInfo]) -> String {
    if tasks.is_empty() {
        return "no tasks\n".into();
    }
    let mut t = Table::new(&["ID", "KIND", "PAIR", "STATE", "PROGRESS", "STARTED", "BY", "MESSAGE"]);
    for task in tasks {
        t.row(vec![
            task.id.to_string(),
            task.kind.to_string(),
            task.pair.to_string(),
            output::wire_name(&task.state),
            output::format_percent(task.progress_percent),
            output::format_time(task.started_unix_ms),
            task.started_by.clone(),
            task.message.clone(),
        ]);
    }
    t.render()
}

fn render_one(t: &TaskInfo) -> String {
    let mut b = Block::default();
    b.line("Task", t.id.to_string());
    b.line("Kind", t.kind.to_string());
    b.line("Pair", t.pair.to_string());
    b.line("State", output::wire_name(&t.state));
    b.line("Progress", output::format_percent(t.progress_percent));
    b.line("Started", format!("{} by {}", output::format_time(t.started_unix_ms), t.started_by));
    if let Some(end) = t.ended_unix_ms {
        b.line("Ended", output::format_time(end));
    }
    b.line("Message", t.message.clone());
    b.line("Log", format!("{} line(s): drpair tasks log {}", t.log_lines, t.id));
    b.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use drpair_types::TaskKind;

    fn task(state: TaskState) -> TaskInfo {
        TaskInfo {
            id: TaskId(7),
            kind: TaskKind::Verify,
            pair: PairId::new("web-01").unwrap(),
            started_by: "api".into(),
            started_unix_ms: 1_790_000_000_000,
            ended_unix_ms: None,
            state,
            progress_percent: 42.0,
            message: "verifying".into(),
            log_lines: 3,
        }
    }

    #[test]
    fn a_list_names_every_column_and_an_empty_one_says_so() {
        let text = render_list(&[task(TaskState::Running)]);
        assert!(text.contains("verify") && text.contains("web-01") && text.contains("running"), "{text}");
        assert_eq!(render_list(&[]), "no tasks\n");
    }

    #[test]
    fn a_failed_task_is_a_job_outcome_naming_it() {
        let e = outcome(&serde_json::json!({"id": 7}), &task(TaskState::Failed));
        assert!(e.to_string().contains("task 7 (verify) on pair web-01 failed: verifying"), "{e}");
        assert_eq!(e.exit_code(), crate::client::exit::FAILURE);
    }

    #[test]
    fn the_follower_sees_progress_and_the_end() {
        match seen(&task(TaskState::Running)) {
            Seen::Running { percent, line } => assert_eq!((percent, line.as_str()), (42.0, "42% verifying")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(seen(&task(TaskState::Failed)), Seen::Over));
    }
}
