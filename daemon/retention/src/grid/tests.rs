use std::time::Duration;

use proptest::prelude::*;

use crate::{DEFAULT_GRID, Grid, MAX_RULES, Policy, PolicyError, Rule};

const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86400);

fn thin(count: u32, interval: Duration) -> Rule {
    Rule { count, interval, keep_all: false }
}

#[test]
fn default_grid_parses_to_its_rules() {
    let grid: Grid = DEFAULT_GRID.parse().unwrap();
    let keep_all = Rule { count: 1, interval: 10 * MIN, keep_all: true };
    let expected = vec![keep_all, thin(60, MIN), thin(144, 10 * MIN), thin(168, HOUR), thin(30, DAY)];
    assert_eq!(grid.rules, expected);
    assert_eq!(grid.to_string(), "1x10m(keep=all) | 60x1m | 144x10m | 168x1h | 30x1day");
    assert_eq!(grid.span(), 10 * MIN + HOUR + DAY + 7 * DAY + 30 * DAY);
    assert_eq!(Policy::default(), Policy { grid, keep_last: 10 });
}

#[test]
fn describe_says_it_in_words() {
    let grid: Grid = DEFAULT_GRID.parse().unwrap();
    assert_eq!(
        grid.describe(),
        "every point for 10m, then one per 1m for 1h, one per 10m for 1day, one per 1h for 7days, one per 1day for 30days"
    );
    assert_eq!("24x1h".parse::<Grid>().unwrap().describe(), "one per 1h for 1day");
    assert_eq!(Grid { rules: vec![] }.describe(), "no points but the newest");
}

#[test]
fn whitespace_is_allowed_around_tokens() {
    let grid: Grid = "  1 x 10m ( keep = all ) |60x1m|  2 x 1h 30m ".parse().unwrap();
    assert_eq!(grid.to_string(), "1x10m(keep=all) | 60x1m | 2x1h 30m");
    assert_eq!(grid.rules[2].interval, HOUR + 30 * MIN);
}

#[test]
fn a_keep_all_rule_may_be_finer_than_nothing_and_thinning_may_follow_it() {
    // Only thinning rules are compared with each other; keep=all rules come first.
    let grid: Grid = "2x1h(keep=all) | 1x30m(keep=all) | 10x1m | 10x1m | 5x7d".parse().unwrap();
    assert_eq!(grid.rules.len(), 5);
}

/// Bad texts, each with the words its error must contain.
const BAD: &[(&str, &str)] = &[
    ("", "the retention grid is empty"),
    ("   ", "the retention grid is empty"),
    ("1x1h |", "rule 2 is empty"),
    ("1x1h || 2x1d", "rule 2 is empty"),
    ("hello", "rule 1 'hello': expected COUNTxINTERVAL"),
    ("1x1h | 24", "rule 2 '24': expected COUNTxINTERVAL"),
    ("x1h", "rule 1 'x1h': expected COUNTxINTERVAL"),
    ("5x", "rule 1 '5x': expected COUNTxINTERVAL"),
    ("(keep=all)", "rule 1 '(keep=all)': expected COUNTxINTERVAL"),
    ("ax1h", "rule 1 'ax1h': count 'a' is not a whole number"),
    ("-1x1h", "count '-1' is not a whole number"),
    ("+1x1h", "count '+1' is not a whole number"),
    ("99999999999x1h", "count '99999999999' is not a whole number"),
    ("0x1h", "rule 1 '0x1h': count is 0"),
    ("1x1 fortnight", "rule 1 '1x1 fortnight': interval '1 fortnight' is not a duration"),
    ("1x1h foo", "interval '1h foo' is not a duration"),
    ("1x1h)", "interval '1h)' is not a duration"),
    ("1x0s", "rule 1 '1x0s': interval is 0"),
    ("1x500ms", "rule 1 '1x500ms': interval 500ms is below the minimum of 1s"),
    ("1x1s 500us", "interval 1s 500us is not a whole number of milliseconds"),
    ("1x1h(keep=some)", "rule 1 '1x1h(keep=some)': unknown modifier '(keep=some)'; the only one is `(keep=all)`"),
    ("1x1h(keep=all", "unknown modifier '(keep=all'"),
    ("1x1h()", "unknown modifier '()'"),
    ("1x1h(keep=all)x", "rule 1 '1x1h(keep=all)x': unexpected 'x' after `(keep=all)`"),
    ("1x1h | 1x1m", "rule 2 '1x1m': interval 1m is finer than the 1h of rule 1; intervals must not get finer"),
    ("1x10m(keep=all) | 60x1m | 10x1h(keep=all)", "rule 3 '10x1h(keep=all)': keeps every point after rule 2 thinned"),
    ("1x1h | 1x1d | 1x1h", "rule 3 '1x1h': interval 1h is finer than the 1day of rule 2"),
    ("101x365d", "the grid spans 100years 11months"),
    ("60x1y | 41x1y", "more than the 100 years allowed"),
    ("4294967295x100y", "more than the 100 years allowed"),
];

#[test]
fn bad_texts_are_refused_naming_the_problem() {
    for (text, words) in BAD {
        let err = text.parse::<Grid>().expect_err(text).to_string();
        assert!(err.contains(words), "{text:?}: {err:?} does not contain {words:?}");
        // Through a policy and through serde, the same words.
        let err = Policy::parse(text, 1).expect_err(text).to_string();
        assert!(err.contains(words), "{text:?}: {err:?}");
        let json = serde_json::json!({ "grid": text });
        let err = serde_json::from_value::<Policy>(json).expect_err(text).to_string();
        assert!(err.contains(words), "{text:?}: {err:?}");
    }
}

#[test]
fn too_many_rules() {
    let text = vec!["1x1h"; MAX_RULES + 1].join(" | ");
    assert_eq!(text.parse::<Grid>().unwrap_err().to_string(), "the grid has 33 rules; at most 32 are allowed");
    assert!(vec!["1x1h"; MAX_RULES].join("|").parse::<Grid>().is_ok());
}

#[test]
fn hand_built_grids_are_checked_like_texts() {
    assert!(matches!(Grid::new(vec![]), Err(PolicyError::Empty)));
    let err = Grid::new(vec![thin(1, HOUR), thin(0, DAY)]).unwrap_err().to_string();
    assert_eq!(err, "rule 2 '0x1day': count is 0; a rule covers at least one interval");
    let err = Grid::new(vec![thin(1, Duration::from_millis(999))]).unwrap_err().to_string();
    assert_eq!(err, "rule 1 '1x999ms': interval 999ms is below the minimum of 1s");
}

#[test]
fn keep_last_is_bounded() {
    assert!(Policy::parse("1x1h", 1_000_000).is_ok());
    let err = Policy::parse("1x1h", 1_000_001).unwrap_err().to_string();
    assert_eq!(err, "keep_last 1000001 is above the 1000000 allowed");
    let err = serde_json::from_str::<Policy>(r#"{"keep_last": 2000000}"#).unwrap_err().to_string();
    assert!(err.contains("keep_last 2000000 is above"), "{err}");
}

#[test]
fn policy_serde_uses_the_grid_text_fills_defaults_and_refuses_unknown_fields() {
    let policy = Policy::parse("1x10m(keep=all) | 24x1h", 3).unwrap();
    let json = serde_json::to_string(&policy).unwrap();
    assert_eq!(json, r#"{"grid":"1x10m(keep=all) | 24x1h","keep_last":3}"#);
    assert_eq!(serde_json::from_str::<Policy>(&json).unwrap(), policy);
    assert_eq!(serde_json::from_str::<Policy>("{}").unwrap(), Policy::default());
    let partial: Policy = serde_json::from_str(r#"{"keep_last": 0}"#).unwrap();
    assert_eq!(partial, Policy { keep_last: 0, ..Policy::default() });
    let err = serde_json::from_str::<Policy>(r#"{"keeplast": 0}"#).unwrap_err().to_string();
    assert!(err.contains("unknown field `keeplast`"), "{err}");
}

/// A valid grid: some keep=all rules, then thinning rules of non-decreasing intervals.
fn valid_grid() -> impl Strategy<Value = Grid> {
    let rule = || (1u32..=100, 1_000u64..=10 * 86_400_000);
    (prop::collection::vec(rule(), 0..4), prop::collection::vec(rule(), 0..28))
        .prop_filter("at least one rule", |(all, thin)| !all.is_empty() || !thin.is_empty())
        .prop_map(|(all, mut thinning)| {
            thinning.sort_by_key(|&(_, ms)| ms);
            let keep_all = all.into_iter().map(|(count, ms)| (count, ms, true));
            let rules = keep_all.chain(thinning.into_iter().map(|(count, ms)| (count, ms, false)));
            let rules =
                rules.map(|(count, ms, keep_all)| Rule { count, interval: Duration::from_millis(ms), keep_all });
            Grid::new(rules.collect()).expect("the strategy makes valid grids")
        })
}

proptest! {
    #[test]
    fn display_round_trips(grid in valid_grid()) {
        let text = grid.to_string();
        prop_assert_eq!(text.parse::<Grid>().unwrap(), grid.clone());
        let json = serde_json::to_string(&grid).unwrap();
        prop_assert_eq!(json.clone(), serde_json::to_string(&text).unwrap());
        prop_assert_eq!(serde_json::from_str::<Grid>(&json).unwrap(), grid);
    }

    #[test]
    fn any_text_parses_or_is_refused_and_what_parses_round_trips(text in "[0-9x|() a-z=.]{0,40}") {
        if let Ok(grid) = text.parse::<Grid>() {
            prop_assert_eq!(grid.to_string().parse::<Grid>().unwrap(), grid);
        }
    }
}
