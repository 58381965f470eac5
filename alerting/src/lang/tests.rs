use proptest::prelude::*;

use super::*;

fn ok(text: &str) -> Rule {
    parse(text).unwrap_or_else(|e| {
        panic!(
            "{text}: {}",
            e.iter()
                .map(|e| e.render(text))
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

fn err(text: &str) -> RuleError {
    match parse(text) {
        Ok(r) => panic!("{text} parsed as {r:?}"),
        Err(e) => e[0].clone(),
    }
}

fn s(metric: &str) -> Expr {
    Expr::Series(Series::of(metric))
}

fn n(v: f64) -> Expr {
    Expr::Number(v)
}

#[test]
fn every_example_of_the_issue_parses_and_prints_in_normal_form() {
    for (text, normal) in [
        ("system.load.1 >= 4 for 2m", "system.load.1 >= 4 for 2m"),
        (
            "avg(system.load.1, 5m) >= 4 resolve when avg(system.load.1, 5m) < 3",
            "avg(system.load.1, 5m) >= 4 resolve when avg(system.load.1, 5m) < 3",
        ),
        (
            "memPhysUsed / memPhysTotal > 0.9 for 5m",
            "memPhysUsed / memPhysTotal > 0.9 for 5m",
        ),
        (
            r#"system.disk.in_use{device_name="/dev/sda1"} >= 0.9"#,
            r#"system.disk.in_use{device_name="/dev/sda1"} >= 0.9"#,
        ),
        (
            r#"rate(system.net.bytes_rcvd{device_name="eth0"}, 5m) > 2e6"#,
            r#"rate(system.net.bytes_rcvd{device_name="eth0"}, 5m) > 2000000"#,
        ),
        ("absent(system.load.1, 10m)", "absent(system.load.1, 10m)"),
        (
            r#"  "ioStats.%util"{ device_name = "sda" }>90 for 120s keep_firing_for 1h "#,
            r#""ioStats.%util"{device_name="sda"} > 90 for 2m keep_firing_for 1h"#,
        ),
    ] {
        let rule = ok(text);
        assert_eq!(rule.to_string(), normal, "{text}");
        assert_eq!(ok(normal), rule, "{normal} parses back");
    }
}

#[test]
fn the_parts_of_a_rule_land_where_they_belong() {
    let r =
        ok("avg(system.load.1, 5m) >= 4 for 2m resolve when system.load.1 < 3 keep_firing_for 10m");
    assert_eq!(
        r.condition,
        Cond::Compare(
            Expr::Aggregate(Agg::Avg, Series::of("system.load.1"), 300),
            CmpOp::Ge,
            n(4.0)
        )
    );
    assert_eq!(r.for_s, Some(120));
    assert_eq!(
        r.resolve,
        Some(Cond::Compare(s("system.load.1"), CmpOp::Lt, n(3.0)))
    );
    assert_eq!(r.keep_firing_for_s, Some(600));
    let d = ok(r#"pct_change(x{b="2", a="1"}, 1d) != 0"#);
    let Cond::Compare(Expr::Aggregate(Agg::PctChange, series, 86_400), CmpOp::Ne, _) = d.condition
    else {
        panic!("{d:?}")
    };
    assert_eq!(
        series.labels,
        vec![("a".into(), "1".into()), ("b".into(), "2".into())],
        "labels sorted"
    );
}

#[test]
fn precedence_and_associativity() {
    // * before +, left to right.
    assert_eq!(
        ok("a + b * c - d > 0").condition,
        Cond::Compare(
            Expr::Binary(
                Box::new(Expr::Binary(
                    Box::new(s("a")),
                    ArithOp::Add,
                    Box::new(Expr::Binary(
                        Box::new(s("b")),
                        ArithOp::Mul,
                        Box::new(s("c"))
                    ))
                )),
                ArithOp::Sub,
                Box::new(s("d"))
            ),
            CmpOp::Gt,
            n(0.0)
        )
    );
    assert_eq!(ok("a - b - c > 0").to_string(), "a - b - c > 0");
    assert_eq!(ok("a - (b - c) > 0").to_string(), "a - (b - c) > 0");
    assert_eq!(ok("(a - b) - c > 0").to_string(), "a - b - c > 0");
    assert_eq!(ok("a / (b * c) > 0").to_string(), "a / (b * c) > 0");
    assert_eq!(ok("-a * -(b + 1) > -2").to_string(), "-a * -(b + 1) > -2");
    // not before and before or.
    let c = ok("not a > 1 and b > 2 or c > 3").condition;
    let Cond::Or(left, right) = c else {
        panic!("or at the top: {c:?}")
    };
    assert!(matches!(*right, Cond::Compare(..)));
    let Cond::And(not, _) = *left else {
        panic!("and under or")
    };
    assert!(matches!(*not, Cond::Not(_)));
    assert_eq!(
        ok("(a > 1 or b > 2) and not (c > 3 and d > 4)").to_string(),
        "(a > 1 or b > 2) and not (c > 3 and d > 4)"
    );
    assert_eq!(
        ok("((a > 1)) and ((b + 1)) > 2").to_string(),
        "a > 1 and b + 1 > 2"
    );
    // A metric named like an aggregate, without parentheses.
    assert_eq!(
        ok("count > 3").condition,
        Cond::Compare(s("count"), CmpOp::Gt, n(3.0))
    );
}

#[test]
fn every_error_says_what_and_where() {
    for (text, line, column, message) in [
        (
            "system.load.1 >= 4 for x",
            1,
            24,
            "expected a duration after `for`, found `x`",
        ),
        (
            "system.load.1 >= 4 for",
            1,
            23,
            "expected a duration after `for`, found the end of the rule",
        ),
        (
            "system.load.1 >= 4 for 0m",
            1,
            24,
            "`for` must be more than 0",
        ),
        (
            "system.load.1 >= 4 for 8d",
            1,
            24,
            "`for` of 8d is too long; at most 7d",
        ),
        (
            "avg(system.load.1, 2d) > 1",
            1,
            20,
            "a window of 2d is too long; at most 1d",
        ),
        (
            "system.load.1 >= 4 resolve system.load.1 < 3",
            1,
            28,
            "expected `when` after `resolve`, found `system.load.1`",
        ),
        ("system.load.1", 1, 14, "expected "),
        ("system.load.1 >> 4", 1, 16, "expected "),
        ("x > 1 > 2", 1, 7, "expected "),
        ("x{a=\"1\", a=\"2\"} > 0", 1, 1, "label `a` is given twice"),
        ("for > 1", 1, 1, "expected "),
        ("x > 1\n  and y >= ", 2, 12, "expected "),
        ("avg(x 5m) > 1", 1, 7, "expected `{` or `,`, found `5m`"),
        ("x > 1 fro 2m", 1, 7, "expected "),
    ] {
        let e = err(text);
        assert_eq!(
            (e.line, e.column),
            (line, column),
            "{text}: {}",
            e.render(text)
        );
        assert!(e.message.starts_with(message), "{text}: {}", e.message);
    }
    assert!(err("for > 1")
        .message
        .ends_with("found `for` (a keyword: a metric of that name is written \"for\")"));
    let text = "system.load.1 >= 4 for x";
    assert_eq!(
        err(text).render(text),
        "line 1, column 24: expected a duration after `for`, found `x`\n  system.load.1 >= 4 for x\n                         ^"
    );
    let long = format!("x > {}", "1".repeat(LIMITS.text));
    assert!(
        err(&long).message.contains("at most 4096"),
        "length bounded"
    );
}

#[test]
fn series_lists_every_series_with_its_longest_window() {
    let r = ok("avg(x, 5m) > 1 and x > 0 or max(x, 10m) > y or absent(z, 1h)");
    let got: Vec<(String, u64)> = r
        .condition
        .series()
        .into_iter()
        .map(|(s, w)| (s.to_string(), w))
        .collect();
    assert_eq!(
        got,
        vec![("x".into(), 600), ("y".into(), 0), ("z".into(), 0)]
    );
}

fn arb_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9_]{0,6}(\\.[a-z0-9_]{1,4}){0,2}",
        "[a-z %\"\\\\/.:-]{1,8}",
    ]
}

fn arb_series() -> impl Strategy<Value = Series> {
    (
        arb_name(),
        prop::collection::btree_map("[a-z_][a-z0-9_]{0,5}", "[ -~]{0,6}", 0..3),
    )
        .prop_map(|(metric, labels)| Series {
            metric,
            labels: labels.into_iter().collect(),
        })
}

fn arb_duration(max: u64) -> impl Strategy<Value = u64> {
    prop_oneof![1..=max, (1..=max / 60).prop_map(|m| m * 60)]
}

fn arb_expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        (0.0f64..1e9).prop_map(Expr::Number),
        (0u32..1000).prop_map(|v| Expr::Number(f64::from(v))),
        arb_series().prop_map(Expr::Series),
        (
            prop::sample::select(Agg::ALL.to_vec()),
            arb_series(),
            arb_duration(LIMITS.window_s)
        )
            .prop_map(|(a, s, w)| Expr::Aggregate(a, s, w)),
    ];
    leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| Expr::Neg(Box::new(e))),
            (
                inner.clone(),
                prop::sample::select(vec![ArithOp::Add, ArithOp::Sub, ArithOp::Mul, ArithOp::Div]),
                inner
            )
                .prop_map(|(a, op, b)| Expr::Binary(Box::new(a), op, Box::new(b))),
        ]
    })
}

fn arb_cond() -> impl Strategy<Value = Cond> {
    let leaf = prop_oneof![
        (
            arb_expr(),
            prop::sample::select(CmpOp::ALL.to_vec()),
            arb_expr()
        )
            .prop_map(|(a, op, b)| Cond::Compare(a, op, b)),
        (arb_series(), arb_duration(LIMITS.duration_s)).prop_map(|(s, d)| Cond::Absent(s, d)),
    ];
    leaf.prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|c| Cond::Not(Box::new(c))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Cond::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| Cond::Or(Box::new(a), Box::new(b))),
        ]
    })
}

fn arb_rule() -> impl Strategy<Value = Rule> {
    (
        arb_cond(),
        prop::option::of(arb_duration(LIMITS.duration_s)),
        prop::option::of(arb_cond()),
        prop::option::of(arb_duration(LIMITS.duration_s)),
    )
        .prop_map(|(condition, for_s, resolve, keep_firing_for_s)| Rule {
            condition,
            for_s,
            resolve,
            keep_firing_for_s,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn a_printed_rule_parses_back_to_itself(rule in arb_rule()) {
        let text = rule.to_string();
        prop_assume!(text.len() <= LIMITS.text);
        match parse(&text) {
            Ok(back) => prop_assert_eq!(back, rule, "{}", text),
            Err(e) => prop_assert!(false, "{} does not parse: {}", text, e[0].render(&text)),
        }
    }

    #[test]
    fn any_text_parses_or_says_where_it_went_wrong(text in "[ -~\n]{0,80}") {
        if let Err(errors) = parse(&text) {
            prop_assert!(!errors.is_empty());
            for e in errors {
                prop_assert!(e.offset <= text.len());
                prop_assert!(!e.message.is_empty());
                let _ = e.render(&text);
            }
        }
    }
}
