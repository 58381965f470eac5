//! The rule language's parser (chumsky): text to [`Rule`], with every error's position.

use chumsky::prelude::*;
use chumsky::text::ascii::{ident, keyword};

use super::{Agg, ArithOp, CmpOp, Cond, Expr, Rule, RuleError, Series, KEYWORDS, LIMITS};

type Extra<'a> = extra::Err<Rich<'a, char>>;

/// Parses and checks `text`: the rule, or every error found (each with its position).
pub fn parse(text: &str) -> Result<Rule, Vec<RuleError>> {
    if text.len() > LIMITS.text {
        return Err(vec![RuleError::at(
            text,
            LIMITS.text,
            format!("the rule is {} bytes; at most {}", text.len(), LIMITS.text),
        )]);
    }
    rule().parse(text).into_result().map_err(|errors| {
        let mut out: Vec<RuleError> = errors.into_iter().map(|e| error(text, e)).collect();
        out.sort_by_key(|e| e.offset);
        out.dedup();
        out
    })
}

/// A [`RuleError`] of a chumsky error.
fn error(text: &str, e: Rich<'_, char>) -> RuleError {
    let offset = e.span().start;
    let message = match e.reason() {
        chumsky::error::RichReason::Custom(m) => m.clone(),
        chumsky::error::RichReason::ExpectedFound { expected, .. } => {
            // `RichPattern` is non-exhaustive: what it may grow is "something else".
            let mut wanted: Vec<String> = Vec::new();
            for p in expected {
                let w = match p {
                    chumsky::error::RichPattern::Label(l) if l == "whitespace" => continue,
                    chumsky::error::RichPattern::Label(l) => l.to_string(),
                    chumsky::error::RichPattern::Token(c) => format!("`{}`", **c),
                    chumsky::error::RichPattern::Identifier(i) => {
                        format!("`{}`", i.trim_matches('"'))
                    }
                    chumsky::error::RichPattern::EndOfInput => "the end of the rule".into(),
                    chumsky::error::RichPattern::Any => continue,
                    _ => "something else".into(),
                };
                if !wanted.contains(&w) {
                    wanted.push(w);
                }
            }
            let found = match found_text(text, offset) {
                Some(w)
                    if KEYWORDS.contains(&w.as_str()) && !wanted.contains(&format!("`{w}`")) =>
                {
                    format!("found `{w}` (a keyword: a metric of that name is written \"{w}\")")
                }
                Some(w) => format!("found `{w}`"),
                None => "found the end of the rule".into(),
            };
            match wanted.as_slice() {
                [] => format!("unexpected: {found}"),
                [one] => format!("expected {one}, {found}"),
                [init @ .., last] => format!("expected {} or {last}, {found}", init.join(", ")),
            }
        }
    };
    RuleError::at(text, offset, message)
}

/// The word (or the character) at `offset`, for messages.
fn found_text(text: &str, offset: usize) -> Option<String> {
    let rest = text.get(offset..)?;
    let first = rest.chars().next()?;
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == '.';
    Some(if word(first) {
        rest.chars().take_while(|c| word(*c)).take(40).collect()
    } else {
        first.to_string()
    })
}

/// `30s`, `5m`, `2h`, `1d` as written: the number and the unit, labelled `label`.
fn duration_text<'a>(
    label: &'static str,
) -> impl Parser<'a, &'a str, (&'a str, char), Extra<'a>> + Clone {
    text::int(10)
        .then(one_of("smhd"))
        .then_ignore(
            any()
                .filter(|c: &char| c.is_ascii_alphanumeric() || *c == '_')
                .not(),
        )
        .labelled(label)
}

/// A duration labelled `label`: seconds, more than 0 and at most `max` (`what` names it
/// in errors). The checks come after the label, so that their messages are kept.
fn duration<'a>(
    label: &'static str,
    max: u64,
    what: &'static str,
) -> impl Parser<'a, &'a str, u64, Extra<'a>> + Clone {
    duration_text(label).try_map(move |(n, unit): (&str, char), span| {
        let scale = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            _ => 86_400,
        };
        let s = n
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(scale))
            .filter(|s| *s <= max)
            .ok_or_else(|| {
                Rich::custom(
                    span,
                    format!(
                        "{what} of {n}{unit} is too long; at most {}",
                        super::duration_text(max)
                    ),
                )
            })?;
        if s == 0 {
            return Err(Rich::custom(span, format!("{what} must be more than 0")));
        }
        Ok(s)
    })
}

/// The label of a duration where any is expected.
const A_DURATION: &str = "a duration (30s, 5m, 2h, 1d)";

/// A string in double quotes (`\"` and `\\` escaped), on one line.
fn string<'a>() -> impl Parser<'a, &'a str, String, Extra<'a>> + Clone {
    let escape = just('\\').ignore_then(one_of("\\\""));
    none_of("\\\"\n")
        .or(escape)
        .repeated()
        .collect::<String>()
        .delimited_by(just('"'), just('"'))
        .labelled("a string in double quotes")
}

/// A series: a metric name (bare or quoted) and its labels.
fn series<'a>() -> impl Parser<'a, &'a str, Series, Extra<'a>> + Clone {
    let bare = any()
        .filter(|c: &char| c.is_ascii_alphabetic() || *c == '_')
        .then(
            any()
                .filter(|c: &char| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
                .repeated(),
        )
        .to_slice()
        .filter(|s: &&str| !KEYWORDS.contains(s))
        .try_map(|s: &str, span| {
            if s.ends_with('.') {
                Err(Rich::custom(
                    span,
                    format!("a metric name does not end with `.`: `{s}`"),
                ))
            } else {
                Ok(s.to_string())
            }
        });
    let metric = bare.or(string()).labelled("a metric");
    let label = ident()
        .map_with(|name: &str, e| (name.to_string(), e.span()))
        .labelled("a label name")
        .then_ignore(just('=').padded())
        .then(string())
        .padded();
    let labels = label
        .separated_by(just(','))
        .at_least(1)
        .collect::<Vec<_>>()
        .delimited_by(just('{').padded(), just('}'));
    metric
        .then(labels.or_not())
        .try_map(|(metric, labels), span| {
            let mut labels = labels.unwrap_or_default();
            if metric.is_empty() {
                return Err(Rich::custom(span, "a metric name is not empty"));
            }
            if labels.len() > LIMITS.labels {
                return Err(Rich::custom(
                    span,
                    format!("{} labels; at most {}", labels.len(), LIMITS.labels),
                ));
            }
            for (i, ((name, at), _)) in labels.iter().enumerate() {
                if labels[..i].iter().any(|((n, _), _)| n == name) {
                    return Err(Rich::custom(*at, format!("label `{name}` is given twice")));
                }
            }
            labels.sort_by(|a, b| a.0 .0.cmp(&b.0 .0));
            let labels = labels.into_iter().map(|((k, _), v)| (k, v)).collect();
            Ok(Series { metric, labels })
        })
        .padded()
}

/// `agg(series, WINDOW)`.
fn aggregate<'a>() -> impl Parser<'a, &'a str, Expr, Extra<'a>> + Clone {
    let name = choice((
        keyword("avg").to(Agg::Avg),
        keyword("min").to(Agg::Min),
        keyword("max").to(Agg::Max),
        keyword("sum").to(Agg::Sum),
        keyword("count").to(Agg::Count),
        keyword("last").to(Agg::Last),
        keyword("rate").to(Agg::Rate),
        keyword("delta").to(Agg::Delta),
        keyword("pct_change").to(Agg::PctChange),
    ))
    .labelled("an aggregate");
    name.then_ignore(just('(').padded())
        .then(series())
        .then_ignore(just(',').padded())
        .then(duration(A_DURATION, LIMITS.window_s, "a window").padded())
        .then_ignore(just(')'))
        .map(|((agg, s), w)| Expr::Aggregate(agg, s, w))
        .padded()
}

/// A number: `4`, `0.9`, `1e6`.
fn number<'a>() -> impl Parser<'a, &'a str, Expr, Extra<'a>> + Clone {
    text::digits(10)
        .then(just('.').then(text::digits(10)).or_not())
        .then(
            one_of("eE")
                .then(one_of("+-").or_not())
                .then(text::digits(10))
                .or_not(),
        )
        .to_slice()
        .try_map(|s: &str, span| {
            s.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .map(Expr::Number)
                .ok_or_else(|| Rich::custom(span, format!("{s} is not a finite number")))
        })
        .labelled("a number")
        .padded()
}

/// `sum` of the grammar: an arithmetic expression.
fn sum<'a>() -> impl Parser<'a, &'a str, Expr, Extra<'a>> + Clone {
    recursive(|sum| {
        let atom = choice((
            aggregate(),
            number(),
            series().map(Expr::Series),
            sum.delimited_by(just('(').padded(), just(')').padded()),
        ));
        let unary = recursive(|unary| {
            just('-')
                .padded()
                .ignore_then(unary)
                .map(|e| Expr::Neg(Box::new(e)))
                .or(atom)
        });
        let product = unary.clone().foldl(
            one_of("*/").padded().then(unary).repeated(),
            |a, (op, b)| {
                let op = if op == '*' {
                    ArithOp::Mul
                } else {
                    ArithOp::Div
                };
                Expr::Binary(Box::new(a), op, Box::new(b))
            },
        );
        product.clone().foldl(
            one_of("+-").padded().then(product).repeated(),
            |a, (op, b)| {
                let op = if op == '+' {
                    ArithOp::Add
                } else {
                    ArithOp::Sub
                };
                Expr::Binary(Box::new(a), op, Box::new(b))
            },
        )
    })
}

/// `condition` of the grammar.
fn condition<'a>() -> impl Parser<'a, &'a str, Cond, Extra<'a>> + Clone {
    let op = choice((
        just(">=").to(CmpOp::Ge),
        just("<=").to(CmpOp::Le),
        just("==").to(CmpOp::Eq),
        just("!=").to(CmpOp::Ne),
        just(">").to(CmpOp::Gt),
        just("<").to(CmpOp::Lt),
    ))
    .labelled("a comparison (>, >=, <, <=, ==, !=)")
    .padded();
    let absent = keyword("absent")
        .padded()
        .ignore_then(just('(').padded())
        .ignore_then(series())
        .then_ignore(just(',').padded())
        .then(duration(A_DURATION, LIMITS.duration_s, "an absent duration").padded())
        .then_ignore(just(')').padded())
        .map(|(s, d)| Cond::Absent(s, d));
    let comparison = absent.or(sum()
        .then(op)
        .then(sum())
        .map(|((a, op), b)| Cond::Compare(a, op, b)));
    recursive(|condition| {
        let negated = recursive(|negated| {
            choice((
                keyword("not")
                    .padded()
                    .ignore_then(negated)
                    .map(|c| Cond::Not(Box::new(c))),
                comparison,
                condition.delimited_by(just('(').padded(), just(')').padded()),
            ))
        });
        let disjunct = negated.clone().foldl(
            keyword("and").padded().ignore_then(negated).repeated(),
            |a, b| Cond::And(Box::new(a), Box::new(b)),
        );
        disjunct.clone().foldl(
            keyword("or").padded().ignore_then(disjunct).repeated(),
            |a, b| Cond::Or(Box::new(a), Box::new(b)),
        )
    })
}

/// `rule` of the grammar, to the end of the text.
fn rule<'a>() -> impl Parser<'a, &'a str, Rule, Extra<'a>> {
    let for_ = keyword("for")
        .padded()
        .ignore_then(duration("a duration after `for`", LIMITS.duration_s, "`for`").padded());
    let resolve = keyword("resolve")
        .padded()
        .ignore_then(keyword("when").labelled("`when` after `resolve`").padded())
        .ignore_then(condition());
    let keep = keyword("keep_firing_for").padded().ignore_then(
        duration(
            "a duration after `keep_firing_for`",
            LIMITS.duration_s,
            "`keep_firing_for`",
        )
        .padded(),
    );
    condition()
        .then(for_.or_not())
        .then(resolve.or_not())
        .then(keep.or_not())
        .then_ignore(end())
        .map(|(((condition, for_s), resolve), keep_firing_for_s)| Rule {
            condition,
            for_s,
            resolve,
            keep_firing_for_s,
        })
        .padded()
}
