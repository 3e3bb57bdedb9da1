//! Delivery by e-mail over SMTP (`lettre`): plain text, one message per notification, the
//! severity and summary in the subject. STARTTLS by default, implicit TLS on request, plain
//! only to a loopback server (the config refuses it elsewhere).

use crate::config::notify::{SmtpTarget, SmtpTls};
use drpair_types::notify::{Notification, NotificationStatus};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use std::time::Duration;

/// The subject line: `[drpair WARNING] RPO warning on web-01: …`.
pub fn subject(n: &Notification) -> String {
    let tag = match n.status {
        NotificationStatus::Resolved => "RESOLVED".to_string(),
        NotificationStatus::Test => "TEST".to_string(),
        _ => n.severity.as_str().to_uppercase(),
    };
    format!("[drpair {tag}] {}", n.summary)
}

/// The body: the summary, the detail, then every field a reader may want to search for.
pub fn body(n: &Notification) -> String {
    format!(
        "{}\n\n{}\n\nstatus: {:?}\nkind: {}\nseverity: {}\npair: {}\nsince: {}\ntime: {}\nstandby: {}\nkey: {}\nid: {}\n",
        n.summary,
        n.message,
        n.status,
        n.kind,
        n.severity.as_str(),
        n.pair.as_deref().unwrap_or("-"),
        n.since,
        n.time,
        n.standby,
        n.key,
        n.id
    )
}

fn tls_parameters(host: &str, ca_pem: Option<&[u8]>) -> Result<TlsParameters, String> {
    let mut p = TlsParameters::builder(host.to_string());
    if let Some(pem) = ca_pem {
        p = p.add_root_certificate(Certificate::from_pem(pem).map_err(|e| format!("ca_file: {e}"))?);
    }
    p.build_rustls().map_err(|e| format!("TLS set-up for {host}: {e}"))
}

/// Sends `n` to the target's recipients; Ok with the server's answer, or why it failed.
pub fn send(t: &SmtpTarget, ca_pem: Option<&[u8]>, timeout: Duration, n: &Notification) -> Result<String, String> {
    let mailbox = |s: &str| s.parse::<Mailbox>().map_err(|e| format!("'{s}': {e}"));
    let mut b = Message::builder().from(mailbox(&t.from)?).subject(subject(n)).header(ContentType::TEXT_PLAIN);
    for to in &t.to {
        b = b.to(mailbox(to)?);
    }
    let msg = b.body(body(n)).map_err(|e| format!("building the message: {e}"))?;
    let mut builder = SmtpTransport::builder_dangerous(&t.host).port(t.port).timeout(Some(timeout));
    builder = match t.tls {
        SmtpTls::None => builder,
        SmtpTls::StartTls => builder.tls(Tls::Required(tls_parameters(&t.host, ca_pem)?)),
        SmtpTls::Implicit => builder.tls(Tls::Wrapper(tls_parameters(&t.host, ca_pem)?)),
    };
    if let Some((user, password)) = &t.login {
        builder = builder.credentials(Credentials::new(user.clone(), password.0.clone()));
    }
    let server = format!("{}:{}", t.host, t.port);
    match builder.build().send(&msg) {
        Ok(r) => Ok(format!("{server} accepted it ({})", r.code())),
        Err(e) => Err(format!("{server}: {e}")),
    }
}
