//! The Grafana dashboard the package ships (`packaging/grafana/drpair-overview.json`), read as
//! Grafana reads it: its panels, their queries, and its template variables substituted the
//! way Grafana does before a query reaches Prometheus. There is no Grafana here: the queries
//! are run against a real Prometheus instead (`tests/prometheus_metrics.rs`), and the JSON's
//! structure is checked here (`tests/grafana_dashboard.rs`).

use serde_json::Value;
use std::path::PathBuf;

/// Where the dashboard is in the source tree.
pub fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../packaging/grafana/drpair-overview.json")
}

/// The dashboard, parsed.
pub fn load() -> Value {
    let p = path();
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", p.display()))
}

/// One query of one panel.
#[derive(Debug, Clone)]
pub struct PanelQuery {
    pub panel: String,
    pub ref_id: String,
    pub expr: String,
}

/// Panel types the dashboard may use (all part of Grafana itself, no plugin).
const PANEL_TYPES: &[&str] = &["row", "timeseries", "stat", "bargauge", "gauge", "table", "state-timeline"];
/// Grafana's own variables, with the values the tests give them (`$__rate_interval`: four
/// scrape intervals at least).
pub const GLOBALS: &[(&str, &str)] = &[("__rate_interval", "1m"), ("__interval", "15s"), ("__range", "5m")];

/// Every panel, rows' own panels included (a collapsed row keeps its panels inside).
pub fn panels(d: &Value) -> Vec<Value> {
    let mut out = vec![];
    for p in d["panels"].as_array().into_iter().flatten() {
        out.push(p.clone());
        out.extend(p["panels"].as_array().into_iter().flatten().cloned());
    }
    out
}

/// The dashboard's template variables: (name, type, query as text).
pub fn variables(d: &Value) -> Vec<(String, String, String)> {
    d["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let q = match &v["query"] {
                Value::String(s) => s.clone(),
                o => o["query"].as_str().unwrap_or_default().to_string(),
            };
            (v["name"].as_str().unwrap_or_default().into(), v["type"].as_str().unwrap_or_default().into(), q)
        })
        .collect()
}

/// Every query of every panel.
pub fn queries(d: &Value) -> Vec<PanelQuery> {
    let mut out = vec![];
    for p in panels(d) {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push(PanelQuery {
                panel: format!("panel {} '{}'", p["id"], p["title"].as_str().unwrap_or_default()),
                ref_id: t["refId"].as_str().unwrap_or_default().into(),
                expr: t["expr"].as_str().unwrap_or_default().into(),
            });
        }
    }
    out
}

/// What is wrong with the dashboard's structure: empty when Grafana can load it as meant
/// (each panel typed, placed on the 24-column grid without overlap, with a unique id, the
/// Prometheus data source variable and at least one query with an expression).
pub fn structure_problems(d: &Value) -> Vec<String> {
    let mut bad = vec![];
    let schema = d["schemaVersion"].as_u64().unwrap_or(0);
    if !(36..=41).contains(&schema) {
        bad.push(format!("schemaVersion {schema}: expected about 39"));
    }
    for key in ["uid", "title"] {
        if d[key].as_str().is_none_or(str::is_empty) {
            bad.push(format!("no {key}"));
        }
    }
    let vars = variables(d);
    if !vars.iter().any(|(n, t, q)| n == "datasource" && t == "datasource" && q == "prometheus") {
        bad.push(format!("no Prometheus data source variable named datasource: {vars:?}"));
    }
    if !vars.iter().any(|(n, t, q)| n == "pair" && t == "query" && q.starts_with("label_values(")) {
        bad.push(format!("no pair variable from label_values(…): {vars:?}"));
    }
    let mut ids = vec![];
    let mut boxes: Vec<(String, [u64; 4])> = vec![];
    for p in panels(d) {
        let name = format!("panel {} '{}'", p["id"], p["title"].as_str().unwrap_or_default());
        match p["id"].as_u64() {
            Some(id) if !ids.contains(&id) => ids.push(id),
            _ => bad.push(format!("{name}: id missing or not unique")),
        }
        let ty = p["type"].as_str().unwrap_or_default();
        if !PANEL_TYPES.contains(&ty) {
            bad.push(format!("{name}: type '{ty}' is not one of {PANEL_TYPES:?}"));
        }
        if p["title"].as_str().is_none_or(str::is_empty) {
            bad.push(format!("{name}: no title"));
        }
        let g = &p["gridPos"];
        let grid = ["x", "y", "w", "h"].map(|k| g[k].as_u64());
        match grid {
            [Some(x), Some(y), Some(w), Some(h)] if w > 0 && h > 0 && x + w <= 24 => {
                for (other, [ox, oy, ow, oh]) in &boxes {
                    if x < ox + ow && *ox < x + w && y < oy + oh && *oy < y + h {
                        bad.push(format!("{name} overlaps {other}"));
                    }
                }
                boxes.push((name.clone(), [x, y, w, h]));
            }
            _ => bad.push(format!("{name}: gridPos {g} is not x, y, w > 0, h > 0 within 24 columns")),
        }
        if ty == "row" {
            continue;
        }
        let ds = &p["datasource"];
        if ds["type"] != "prometheus" || ds["uid"] != "${datasource}" {
            bad.push(format!("{name}: datasource {ds}: expected the ${{datasource}} Prometheus variable"));
        }
        let targets = p["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() {
            bad.push(format!("{name}: no targets"));
        }
        let mut refs = vec![];
        for t in &targets {
            let r = t["refId"].as_str().unwrap_or_default().to_string();
            if r.is_empty() || refs.contains(&r) {
                bad.push(format!("{name}: refId '{r}' missing or repeated"));
            }
            refs.push(r);
            if t["expr"].as_str().is_none_or(|e| e.trim().is_empty()) {
                bad.push(format!("{name}: a target without expr: {t}"));
            }
            if !t["datasource"].is_null() && t["datasource"] != *ds {
                bad.push(format!("{name}: a target's datasource {} differs from the panel's", t["datasource"]));
            }
        }
    }
    bad
}

/// `expr` with the template variables Grafana would substitute: `vars` (the dashboard's, by
/// name) and [`GLOBALS`]. An error names a `$` left over: a variable the dashboard does not
/// define.
pub fn substitute(expr: &str, vars: &[(&str, &str)]) -> Result<String, String> {
    let mut all: Vec<(&str, &str)> = vars.iter().chain(GLOBALS).copied().collect();
    // Longest names first: `$__range` is not `$__rate_interval`'s prefix, but be safe.
    all.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
    let mut out = expr.to_string();
    for (name, value) in all {
        out = out.replace(&format!("${{{name}}}"), value);
        out = out.replace(&format!("${name}"), value);
    }
    match out.find('$') {
        Some(at) => Err(format!("'{expr}': an unknown variable at '{}'", &out[at..])),
        None => Ok(out),
    }
}

/// The `drpair_…` metric names an expression names.
pub fn metric_names(expr: &str) -> Vec<String> {
    let mut out = vec![];
    let mut rest = expr;
    while let Some(at) = rest.find("drpair_") {
        let name: String =
            rest[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':').collect();
        rest = &rest[at + name.len()..];
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}
