//! The standby's server: its two listeners (the link's accept loop, the HTTP API), its
//! schedules and samplers, from start to a clean stop. The only place that wires the standby
//! to the API (`standby` never imports `api`).

use crate::config::StandbyConfig;
use crate::standby::{Standby, control, maintenance, session, trend};
use anyhow::{Context, Result};
use tokio::net::TcpListener;

/// Runs the standby until `shutdown` resolves. `ready` is called once both listeners serve.
pub async fn run(
    cfg: StandbyConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ready: impl FnOnce(),
) -> Result<()> {
    let sb = Standby::open(&cfg)?;
    for h in sb.registry.all() {
        control::retire_old_lineage(&sb, &h).await;
    }
    let link =
        TcpListener::bind(cfg.listen).await.with_context(|| format!("cannot listen on {} (link)", cfg.listen))?;
    let api = TcpListener::bind(cfg.api_listen)
        .await
        .with_context(|| format!("cannot listen on {} (api)", cfg.api_listen))?;
    let api_tls = match cfg.api_plain_http {
        true => {
            tracing::warn!(%cfg.api_listen, "api_plain_http: the API and panel are served without TLS (loopback only)");
            None
        }
        false => Some(crate::standby::identity::api_tls(sb.identity.as_ref(), &cfg)?),
    };
    let api = crate::https::ApiListener::spawn(api, api_tls)?;
    let (link_addr, api_addr) = (link.local_addr()?, axum::serve::Listener::local_addr(&api)?);
    sb.link_port.store(link_addr.port(), std::sync::atomic::Ordering::Relaxed);
    // Tests and scripts read the fingerprint and the bound addresses (port 0 picks a free
    // one); the addresses last, as the sign that the standby serves.
    if let Some(id) = &sb.identity {
        std::fs::write(cfg.data_dir.join("fingerprint"), format!("{}\n", id.fingerprint()))?;
    } else {
        let _ = std::fs::remove_file(cfg.data_dir.join("fingerprint"));
    }
    std::fs::write(cfg.data_dir.join("link.addr"), link_addr.to_string())?;
    std::fs::write(cfg.data_dir.join("api.addr"), api_addr.to_string())?;
    tracing::info!(%link_addr, %api_addr, data_dir = %cfg.data_dir.display(), "standby serving");
    // Agents protecting recovered disks dial this standby's link: started once it listens.
    let sb2 = sb.clone();
    tokio::task::spawn_blocking(move || crate::standby::protect::resume_all(&sb2));
    let sb2 = sb.clone();
    let limits = std::sync::Arc::new(session::ConnLimits::default());
    let accept = tokio::spawn(async move {
        loop {
            match link.accept().await {
                Ok((stream, peer)) => {
                    tokio::spawn(session::accept(sb2.clone(), limits.clone(), stream, peer));
                }
                Err(e) => {
                    tracing::warn!("link accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    });
    let schedule = maintenance::spawn(sb.clone());
    let watcher = crate::standby::watch::spawn(sb.clone());
    let sampler = trend::spawn(sb.clone());
    let notifier = crate::standby::notify::run::spawn(sb.clone());
    ready();
    let app = crate::api::router(sb.clone());
    let stopping = sb.clone();
    let shutdown = async move {
        shutdown.await;
        stopping.stopping.send_replace(true);
    };
    axum::serve(api, app.into_make_service_with_connect_info::<crate::https::Peer>())
        .with_graceful_shutdown(shutdown)
        .await
        .context("api server")?;
    accept.abort();
    schedule.abort();
    watcher.abort();
    sampler.abort();
    notifier.iter().for_each(|t| t.abort());
    sb.store.flush().ok();
    tracing::info!("standby stopped");
    Ok(())
}
