//! The expiry families, written into the exposition at each scrape from
//! [`crate::standby::expiry::expiries`] rather than kept in the recorder: the recorder never
//! forgets a series, and a revoked token or a deleted pair's certificate must stop being
//! reported (else its alert would fire for a credential that no longer exists).

use super::help::FAMILIES;
use drpair_types::{Expiry, ExpiryRole};

pub(super) const CERTIFICATE_EXPIRY: &str = "drpair_tls_certificate_expiry_timestamp_seconds";
pub(super) const TOKEN_EXPIRY: &str = "drpair_api_token_expiry_timestamp_seconds";
/// The families written here (gauges, described in `help.rs` as every other; its test checks).
#[cfg(test)]
pub(super) const RENDERED: [&str; 2] = [CERTIFICATE_EXPIRY, TOKEN_EXPIRY];

/// Appends the two families (each only when it has a series) to `out`, a text exposition.
pub(super) fn render(out: &mut String, list: &[Expiry]) {
    let certs: Vec<String> = list
        .iter()
        .filter(|e| e.role.is_certificate())
        .map(|e| {
            let pair =
                if e.role == ExpiryRole::Agent { format!(",pair=\"{}\"", escape(&e.name)) } else { String::new() };
            format!("{CERTIFICATE_EXPIRY}{{role=\"{}\"{pair}}} {}\n", e.role.as_str(), e.not_after_unix)
        })
        .collect();
    let tokens: Vec<String> = list
        .iter()
        .filter(|e| e.role == ExpiryRole::Token)
        .map(|e| format!("{TOKEN_EXPIRY}{{name=\"{}\"}} {}\n", escape(&e.name), e.not_after_unix))
        .collect();
    for (name, lines) in [(CERTIFICATE_EXPIRY, certs), (TOKEN_EXPIRY, tokens)] {
        if lines.is_empty() {
            continue;
        }
        if !out.is_empty() && !out.ends_with("\n\n") {
            out.push_str(if out.ends_with('\n') { "\n" } else { "\n\n" });
        }
        let help = FAMILIES.iter().find(|f| f.0 == name).map_or("", |f| f.2);
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        lines.iter().for_each(|l| out.push_str(l));
    }
}

/// A label value as the text format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_with_their_labels_and_none_when_empty() {
        let e = |role, name: &str, at| Expiry::new(role, name.into(), at, String::new(), 0);
        let mut out = "# TYPE x gauge\nx 1\n".to_string();
        render(&mut out, &[e(ExpiryRole::Server, "drpair-standby", 2_000_000_000), e(ExpiryRole::Agent, "web-01", 5)]);
        assert_eq!(
            out.lines().filter(|l| !l.starts_with('#') && l.starts_with("drpair_")).collect::<Vec<_>>(),
            [
                "drpair_tls_certificate_expiry_timestamp_seconds{role=\"server\"} 2000000000",
                "drpair_tls_certificate_expiry_timestamp_seconds{role=\"agent\",pair=\"web-01\"} 5",
            ]
        );
        assert!(out.contains("x 1\n\n# HELP drpair_tls_certificate_expiry_timestamp_seconds When "), "{out}");
        assert!(!out.contains(TOKEN_EXPIRY), "no token expires: no family");
        let mut out = String::new();
        render(&mut out, &[e(ExpiryRole::Token, "a\"b", 7)]);
        assert!(out.ends_with("drpair_api_token_expiry_timestamp_seconds{name=\"a\\\"b\"} 7\n"), "{out}");
    }
}
