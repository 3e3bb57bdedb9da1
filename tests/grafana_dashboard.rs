//! The Grafana dashboard the package ships (issue 26, part 5), checked without Grafana (there is
//! none on the test machines): its JSON has the structure Grafana needs (typed panels with
//! unique ids on the grid, the Prometheus data source variable on every panel, queries with
//! expressions), every variable its queries use is defined, and every query parses as PromQL
//! (`promtool`'s parser, through `promtool check rules` on a rule made of it). That every query
//! also returns series from a real standby and agent is checked in `prometheus_metrics.rs`,
//! where a real Prometheus scrapes them.

use drpair_e2e::grafana;
use drpair_e2e::step;
use std::process::Command;

#[test]
fn dashboard_structure_and_variables() {
    let d = grafana::load();
    let bad = grafana::structure_problems(&d);
    assert!(bad.is_empty(), "{}:\n{}", grafana::path().display(), bad.join("\n"));
    let queries = grafana::queries(&d);
    assert!(queries.len() >= 15, "only {} queries", queries.len());
    for q in &queries {
        grafana::substitute(&q.expr, &[("pair", ".*")]).unwrap_or_else(|e| panic!("{} {}: {e}", q.panel, q.ref_id));
    }
    // The structure check can fail: a panel without datasource, a repeated id, an overlap.
    let mut broken = d.clone();
    let panels = broken["panels"].as_array_mut().unwrap();
    panels[1].as_object_mut().unwrap().remove("datasource");
    panels[2]["id"] = panels[3]["id"].clone();
    panels[4]["gridPos"] = panels[5]["gridPos"].clone();
    panels[6]["targets"][0]["expr"] = "".into();
    let found = grafana::structure_problems(&broken).join("\n");
    for expected in ["datasource null", "not unique", "overlaps", "without expr"] {
        assert!(found.contains(expected), "the check missed '{expected}':\n{found}");
    }
    assert!(grafana::substitute("up{x=\"$nope\"}", &[("pair", ".*")]).is_err());
    step(format!("{} panels, {} queries, structure as Grafana needs it", grafana::panels(&d).len(), queries.len()));
}

/// Every query, its variables substituted, parses as PromQL: `promtool check rules` on a
/// recording rule per query.
#[test]
fn every_dashboard_query_parses_as_promql() {
    let d = grafana::load();
    let dir = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, q) in grafana::queries(&d).iter().enumerate() {
        let expr = grafana::substitute(&q.expr, &[("pair", "prom-01")]).unwrap();
        rules.push_str(&format!(
            "      - record: dashboard:q{i}\n        expr: {}\n",
            serde_json::to_string(&expr).unwrap()
        ));
    }
    let f = dir.path().join("queries.yml");
    std::fs::write(&f, &rules).unwrap();
    let out = Command::new("promtool").args(["check", "rules"]).arg(&f).output().expect("promtool");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.contains("SUCCESS"), "promtool check rules:\n{said}\n---\n{rules}");
    // And it does refuse what does not parse.
    std::fs::write(&f, "groups:\n  - name: x\n    rules:\n      - record: x:y\n        expr: \"rate(x[\"\n").unwrap();
    let out = Command::new("promtool").args(["check", "rules"]).arg(&f).output().expect("promtool");
    assert!(!out.status.success(), "promtool accepted a broken expression");
    step(format!("promtool parses all {} queries", grafana::queries(&d).len()));
}
