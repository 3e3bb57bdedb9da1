//! The task registry: every long operation of the standby is a task with an id, a kind, a pair,
//! who started it, its times, progress, state and a log of its steps.
//!
//! A task's record and log are kept in memory while it runs and written to
//! `DATA_DIR/tasks/ID.json` when it starts, at each step and when it ends, so the list and the
//! logs survive a standby restart. A task found running in its file at start-up was cut short
//! by the stop: it is recorded as failed. The newest [`KEEP`] tasks are kept.
//!
//! Progress updates stay in memory (they are frequent); steps and the end are written.
//! A [`TaskHandle`] dropped without an end (a panic, an early return) ends its task as failed,
//! so no task is left running forever.

use crate::timefmt::now_ms;
use drpair_types::{PairId, TaskId, TaskInfo, TaskKind, TaskLog, TaskLogLine, TaskState};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Tasks kept (running ones are always kept).
pub const KEEP: usize = 500;
/// Lines kept in one task's log; later lines are counted, not kept.
pub const MAX_LOG_LINES: usize = 2000;

/// What a task file holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TaskFile {
    info: TaskInfo,
    log: Vec<TaskLogLine>,
}

/// Why the task registry could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum TaskStoreError {
    /// The tasks directory cannot be created or read.
    #[error("task directory {dir}: {source}")]
    Dir { dir: PathBuf, source: std::io::Error },
}

/// Every task of this standby.
pub struct Tasks {
    dir: Option<PathBuf>,
    inner: Mutex<Inner>,
}

struct Inner {
    next: u64,
    tasks: BTreeMap<TaskId, TaskFile>,
}

impl Tasks {
    /// Tasks kept in memory only (tests).
    pub fn in_memory() -> Arc<Self> {
        Arc::new(Self { dir: None, inner: Mutex::new(Inner { next: 1, tasks: BTreeMap::new() }) })
    }

    /// Opens (creating) `dir` and loads the tasks kept there. Unreadable files are skipped
    /// with a warning: a damaged task log never stops the standby.
    pub fn open(dir: &Path) -> Result<Arc<Self>, TaskStoreError> {
        let err = |source| TaskStoreError::Dir { dir: dir.to_path_buf(), source };
        std::fs::create_dir_all(dir).map_err(err)?;
        let mut tasks = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(err)? {
            let path = entry.map_err(err)?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<TaskFile>(&b).map_err(|e| e.to_string()))
            {
                Ok(f) => {
                    tasks.insert(f.info.id, f);
                }
                Err(e) => tracing::warn!(file = %path.display(), "task file skipped: {e}"),
            }
        }
        let next = tasks.keys().next_back().map_or(1, |id| id.0 + 1);
        let me = Arc::new(Self { dir: Some(dir.to_path_buf()), inner: Mutex::new(Inner { next, tasks }) });
        let cut_short: Vec<TaskId> = {
            let inner = me.inner.lock().expect("tasks");
            inner.tasks.values().filter(|f| f.info.state == TaskState::Running).map(|f| f.info.id).collect()
        };
        for id in cut_short {
            me.end(id, TaskState::Failed, "cut short: the standby stopped while the task ran".into());
        }
        Ok(me)
    }

    /// Starts a task and logs its first step.
    pub fn start(self: &Arc<Self>, kind: TaskKind, pair: &PairId, started_by: &str, first: &str) -> TaskHandle {
        let now = now_ms();
        let id = {
            let mut inner = self.inner.lock().expect("tasks");
            let id = TaskId(inner.next);
            inner.next += 1;
            let info = TaskInfo {
                id,
                kind,
                pair: pair.clone(),
                started_by: started_by.to_string(),
                started_unix_ms: now,
                ended_unix_ms: None,
                state: TaskState::Running,
                progress_percent: 0.0,
                message: first.to_string(),
                log_lines: 1,
            };
            inner.tasks.insert(id, TaskFile { info, log: vec![TaskLogLine { unix_ms: now, text: first.to_string() }] });
            self.trim(&mut inner);
            id
        };
        tracing::info!(pair = %pair, task = %id, kind = %kind, started_by, "task started: {first}");
        self.persist(id);
        TaskHandle { tasks: self.clone(), id, ended: false }
    }

    /// Tasks newest first, of one pair or all, running ones only if asked.
    pub fn list(&self, pair: Option<&PairId>, running_only: bool) -> Vec<TaskInfo> {
        let inner = self.inner.lock().expect("tasks");
        inner
            .tasks
            .values()
            .rev()
            .map(|f| &f.info)
            .filter(|i| pair.is_none_or(|p| &i.pair == p))
            .filter(|i| !running_only || i.state == TaskState::Running)
            .cloned()
            .collect()
    }

    pub fn get(&self, id: TaskId) -> Option<TaskInfo> {
        self.inner.lock().expect("tasks").tasks.get(&id).map(|f| f.info.clone())
    }

    /// The log of a task from line `from` on.
    pub fn log(&self, id: TaskId, from: u64) -> Option<TaskLog> {
        let inner = self.inner.lock().expect("tasks");
        let f = inner.tasks.get(&id)?;
        let skip = usize::try_from(from).unwrap_or(usize::MAX).min(f.log.len());
        Some(TaskLog { id, state: f.info.state, from: skip as u64, lines: f.log[skip..].to_vec() })
    }

    /// The running task of this kind on this pair, if any.
    pub fn running(&self, kind: TaskKind, pair: &PairId) -> Option<TaskId> {
        let inner = self.inner.lock().expect("tasks");
        inner
            .tasks
            .values()
            .rev()
            .find(|f| f.info.kind == kind && &f.info.pair == pair && f.info.state == TaskState::Running)
            .map(|f| f.info.id)
    }

    /// Adds a step to a running task's log (and makes it the task's message).
    pub fn step(&self, id: TaskId, text: &str) {
        let changed = {
            let mut inner = self.inner.lock().expect("tasks");
            match inner.tasks.get_mut(&id) {
                Some(f) if f.info.state == TaskState::Running => {
                    push_line(f, text);
                    true
                }
                _ => false,
            }
        };
        if changed {
            self.persist(id);
        }
    }

    /// Sets a running task's progress (0-100; kept in memory).
    pub fn progress(&self, id: TaskId, percent: f64) {
        let mut inner = self.inner.lock().expect("tasks");
        if let Some(f) = inner.tasks.get_mut(&id)
            && f.info.state == TaskState::Running
        {
            f.info.progress_percent = percent.clamp(0.0, 100.0);
        }
    }

    /// Ends a running task (a task already over stays as it ended).
    pub fn end(&self, id: TaskId, state: TaskState, message: String) {
        let ended = {
            let mut inner = self.inner.lock().expect("tasks");
            match inner.tasks.get_mut(&id) {
                Some(f) if f.info.state == TaskState::Running => {
                    let end = if state == TaskState::Running { TaskState::Failed } else { state };
                    push_line(f, &message);
                    f.info.state = end;
                    f.info.ended_unix_ms = Some(now_ms());
                    if end == TaskState::Ok {
                        f.info.progress_percent = 100.0;
                    }
                    Some((f.info.pair.clone(), f.info.kind, end))
                }
                _ => None,
            }
        };
        if let Some((pair, kind, end)) = ended {
            match end {
                TaskState::Ok => tracing::info!(pair = %pair, task = %id, kind = %kind, "task ended: {message}"),
                _ => tracing::warn!(pair = %pair, task = %id, kind = %kind, "task failed: {message}"),
            }
            self.persist(id);
        }
    }

    /// Writes one task's file (atomically: a temporary file renamed over it).
    fn persist(&self, id: TaskId) {
        let Some(dir) = &self.dir else { return };
        let Some(file) = self.inner.lock().expect("tasks").tasks.get(&id).cloned() else { return };
        let path = dir.join(format!("{id}.json"));
        let tmp = dir.join(format!(".{id}.json.tmp"));
        let written = serde_json::to_vec(&file)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            tracing::warn!(task = %id, file = %path.display(), "task file not written: {e}");
        }
    }

    /// Forgets the oldest finished tasks beyond [`KEEP`].
    fn trim(&self, inner: &mut Inner) {
        let over = inner.tasks.len().saturating_sub(KEEP);
        if over == 0 {
            return;
        }
        let old: Vec<TaskId> =
            inner.tasks.values().filter(|f| f.info.state.is_over()).take(over).map(|f| f.info.id).collect();
        for id in old {
            inner.tasks.remove(&id);
            if let Some(dir) = &self.dir {
                let _ = std::fs::remove_file(dir.join(format!("{id}.json")));
            }
        }
    }
}

fn push_line(f: &mut TaskFile, text: &str) {
    f.info.message = text.to_string();
    f.info.log_lines += 1;
    match f.log.len() {
        n if n + 1 < MAX_LOG_LINES => f.log.push(TaskLogLine { unix_ms: now_ms(), text: text.to_string() }),
        n if n + 1 == MAX_LOG_LINES => f.log.push(TaskLogLine {
            unix_ms: now_ms(),
            text: format!("(the log keeps {MAX_LOG_LINES} lines; later steps are counted, not kept)"),
        }),
        _ => {}
    }
}

/// How often [`TaskHandle::follow`] looks at the operation it follows.
pub const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// What a followed operation looks like now.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// Still going: its progress and what it does now (a new message is a new log line).
    Running { percent: f64, message: String },
    /// Ended well, with its result.
    Done(String),
    /// Ended badly, with why.
    Failed(String),
}

/// A running task, held by the code doing its work. Dropped without [`TaskHandle::ok`] or
/// [`TaskHandle::fail`], it ends the task as failed.
pub struct TaskHandle {
    tasks: Arc<Tasks>,
    id: TaskId,
    ended: bool,
}

impl TaskHandle {
    pub fn id(&self) -> TaskId {
        self.id
    }

    pub fn step(&self, text: &str) {
        self.tasks.step(self.id, text);
    }

    pub fn progress(&self, percent: f64) {
        self.tasks.progress(self.id, percent);
    }

    pub fn ok(mut self, message: impl Into<String>) {
        self.ended = true;
        self.tasks.end(self.id, TaskState::Ok, message.into());
    }

    pub fn fail(mut self, message: impl Into<String>) {
        self.ended = true;
        self.tasks.end(self.id, TaskState::Failed, message.into());
    }

    /// Follows an operation whose state lives in the pair's record and moves on in other
    /// code (a connection's commits, the agent's reports): `look` is asked every
    /// [`FOLLOW_EVERY`] until it sees the operation end, which ends the task. Each new message
    /// becomes a log line. Needs a tokio runtime.
    pub fn follow(self, mut look: impl FnMut() -> Seen + Send + 'static) {
        tokio::spawn(async move {
            let mut last = self.tasks.get(self.id).map(|i| i.message).unwrap_or_default();
            loop {
                match look() {
                    Seen::Running { percent, message } => {
                        self.progress(percent);
                        if message != last {
                            self.step(&message);
                            last = message;
                        }
                    }
                    Seen::Done(m) => return self.ok(m),
                    Seen::Failed(m) => return self.fail(m),
                }
                tokio::time::sleep(FOLLOW_EVERY).await;
            }
        });
    }

    /// Lets the task outlive this handle: it is ended later through [`Tasks::end`] (a
    /// restart's baseline ends when its point commits, in another connection's code).
    pub fn detach(mut self) -> TaskId {
        self.ended = true;
        self.id
    }
}

impl Drop for TaskHandle {
    fn drop(&mut self) {
        if !self.ended {
            self.tasks.end(self.id, TaskState::Failed, "ended without a result".into());
        }
    }
}

#[cfg(test)]
mod tests;
