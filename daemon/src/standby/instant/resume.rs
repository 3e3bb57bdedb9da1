//! At the standby's start: the instant failovers that ran when it stopped go on. A session
//! still copying resumes its copy (mode `nbd`: from its saved map; mode `boot`: its guest
//! started again from its overlay and mirrored again); one already on its targets is served
//! again (mode `nbd`) or its guest started again from the targets (mode `boot`). A session
//! that cannot resume is recorded failed, with the reason.

use super::super::Standby;
use super::super::failover::target;
use crate::standby::pair::OpError;
use crate::standby::pair::results::JobState;
use drpair_types::{BootRequest, InstantPhase, TaskKind};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Resumes every pair's instant session; returns how many.
pub fn all(sb: &Arc<Standby>) -> usize {
    let mut n = 0;
    for h in sb.registry.all() {
        let Some(mut job) = h.record.lock().expect("record").failover.clone() else { continue };
        let Some(inst) = job.instant.as_mut() else { continue };
        if !matches!(inst.view.phase, InstantPhase::Copying | InstantPhase::OnTargets) {
            continue;
        }
        inst.view.resumed += 1;
        inst.view.exports.clear();
        let pair = job.pair_id.to_string();
        let copying = inst.view.phase == InstantPhase::Copying;
        let asked = inst.asked.clone();
        let task = sb.tasks.start(
            TaskKind::Failover,
            &job.pair_id,
            "standby",
            &format!("instant failover of point {} resumed after the standby's restart", job.point),
        );
        job.message = format!(
            "resumed after the standby's restart ({}); {}",
            inst.view.resumed,
            if copying { "copying onto the targets" } else { "the targets carry the machine" }
        );
        let sizes: Vec<u64> =
            h.record.lock().expect("record").geometries_at(job.epoch).iter().map(|g| g.size_bytes).collect();
        let plan = asked.map(|a| {
            let req = BootRequest {
                memory: Some(format!("{}M", a.memory_mib)),
                cpus: Some(a.cpus),
                firmware: Some(a.firmware),
                expect: Some(a.expect),
                timeout_seconds: Some(a.timeout_seconds),
            };
            super::super::drill::guest::plan(&req, std::time::Duration::from_secs(u64::MAX))
        });
        let opened = (|| -> Result<_, String> {
            let plan = plan.transpose().map_err(|(p, m)| format!("{p}: {m}"))?;
            let mut sides = Vec::new();
            if plan.is_none() {
                for (t, size) in job.targets.iter().zip(&sizes) {
                    sides.push(target::reopen_target(t, *size).map_err(|e| format!("{t}: {e:?}"))?);
                }
            }
            Ok((plan, sides))
        })();
        let job = Arc::new(Mutex::new(job));
        h.runtime.lock().expect("runtime").failover = Some(job.clone());
        let started = opened
            .and_then(|(plan, sides)| super::spawn(sb, &h, job.clone(), sides, plan, Instant::now(), task, false));
        match started {
            Ok(()) => {
                tracing::warn!(%pair, "instant failover resumed after the standby's restart");
                n += 1;
            }
            Err(e) => {
                let mut j = job.lock().expect("failover").clone();
                j.state = if copying { JobState::Failed } else { j.state };
                j.message = format!("the instant failover could not resume after the standby's restart: {e}");
                if let Some(i) = j.instant.as_mut() {
                    i.view.phase = InstantPhase::Failed;
                }
                tracing::error!(%pair, "{}", j.message);
                h.runtime.lock().expect("runtime").failover = None;
                let _ = h.update(&sb.store, |rec| {
                    rec.failover = Some(j);
                    Ok::<_, OpError>(())
                });
            }
        }
    }
    n
}
