//! The alert rule language: rules as text (`avg(system.load.1, 5m) >= 4 for 2m resolve when
//! avg(system.load.1, 5m) < 3`), parsed into a [`Rule`], checked, and printed back in a
//! normal form.
//!
//! ```text
//! rule      := condition [ "for" DURATION ] [ "resolve" "when" condition ] [ "keep_firing_for" DURATION ]
//! condition := disjunct ( "or" disjunct )*
//! disjunct  := negated ( "and" negated )*
//! negated   := "not" negated | comparison | "(" condition ")"
//! comparison:= sum ( ">" | ">=" | "<" | "<=" | "==" | "!=" ) sum
//!           |  "absent" "(" series "," DURATION ")"
//! sum       := product ( ( "+" | "-" ) product )*
//! product   := unary ( ( "*" | "/" ) unary )*
//! unary     := "-" unary | NUMBER | series | agg "(" series "," DURATION ")" | "(" sum ")"
//! agg       := "avg" | "min" | "max" | "sum" | "count" | "last" | "rate" | "delta" | "pct_change"
//! series    := METRIC [ "{" label "=" STRING ( "," label "=" STRING )* "}" ]
//! ```
//!
//! Invariants: a [`Rule`] that [`parse`] returns is within [`LIMITS`] (durations, windows,
//! length, labels), its series name each label once (sorted by name), and
//! `parse(&rule.to_string()) == Ok(rule)`: the printed form is the normal form (binary
//! operators left-associative, parentheses only where precedence needs them, durations in
//! their largest whole unit). Every error carries the line and column where it is.
//!
//! A [`Compiled`] rule evaluates on [`Inputs`] (a payload's values per series, the
//! series' [`Window`]s, their silences) with three-valued logic: see `eval`.

mod eval;
mod parse;

use std::fmt;

pub use eval::{Compiled, Inputs, Program, Slot, Window};
pub use parse::parse;

/// How long a rule, a window or a duration may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest rule text, in bytes.
    pub text: usize,
    /// Longest aggregate window (points are kept in alert state for it), in seconds.
    pub window_s: u64,
    /// Longest `for`, `keep_firing_for` and `absent` duration, in seconds.
    pub duration_s: u64,
    /// Most labels on one series.
    pub labels: usize,
}

/// The limits every rule is checked against.
pub const LIMITS: Limits = Limits {
    text: 4_096,
    window_s: 86_400,
    duration_s: 7 * 86_400,
    labels: 16,
};

/// A rule: when it fires and when it clears.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// The condition.
    pub condition: Cond,
    /// `for D`: the condition holds on every evaluation for this long before it fires.
    pub for_s: Option<u64>,
    /// `resolve when C`: once firing, the alert clears only when this holds (default:
    /// when the condition does not).
    pub resolve: Option<Cond>,
    /// `keep_firing_for D`: stays firing this long after the clear condition holds.
    pub keep_firing_for_s: Option<u64>,
}

/// A condition.
#[derive(Clone, Debug, PartialEq)]
pub enum Cond {
    /// `a or b`.
    Or(Box<Cond>, Box<Cond>),
    /// `a and b`.
    And(Box<Cond>, Box<Cond>),
    /// `not a`.
    Not(Box<Cond>),
    /// `a OP b`.
    Compare(Expr, CmpOp, Expr),
    /// `absent(series, D)`: the device sent no point of the series for D seconds.
    Absent(Series, u64),
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl CmpOp {
    /// Every operator, longest first (how the parser tries them).
    pub const ALL: [CmpOp; 6] = [
        CmpOp::Ge,
        CmpOp::Le,
        CmpOp::Eq,
        CmpOp::Ne,
        CmpOp::Gt,
        CmpOp::Lt,
    ];

    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
        }
    }

    /// `a OP b`.
    pub fn holds(self, a: f64, b: f64) -> bool {
        match self {
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
        }
    }
}

/// A numeric expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A constant (never negative: `-4` is `Neg(Number(4))`).
    Number(f64),
    /// A series' value in the payload being evaluated.
    Series(Series),
    /// An aggregate of a series' points within a window ending at the payload's time.
    Aggregate(Agg, Series, u64),
    /// `-a`.
    Neg(Box<Expr>),
    /// `a OP b`.
    Binary(Box<Expr>, ArithOp, Box<Expr>),
}

/// An arithmetic operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
}

impl ArithOp {
    /// The operator as written.
    pub fn symbol(self) -> char {
        match self {
            ArithOp::Add => '+',
            ArithOp::Sub => '-',
            ArithOp::Mul => '*',
            ArithOp::Div => '/',
        }
    }
}

/// A window aggregate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Agg {
    /// Mean of the points.
    Avg,
    /// Smallest point.
    Min,
    /// Largest point.
    Max,
    /// Sum of the points.
    Sum,
    /// How many points.
    Count,
    /// The latest point.
    Last,
    /// Per-second increase from the first point to the last.
    Rate,
    /// Last - first.
    Delta,
    /// 100 * (last - first) / first.
    PctChange,
}

impl Agg {
    /// Every aggregate.
    pub const ALL: [Agg; 9] = [
        Agg::Avg,
        Agg::Min,
        Agg::Max,
        Agg::Sum,
        Agg::Count,
        Agg::Last,
        Agg::Rate,
        Agg::Delta,
        Agg::PctChange,
    ];

    /// Its name in rules.
    pub fn name(self) -> &'static str {
        match self {
            Agg::Avg => "avg",
            Agg::Min => "min",
            Agg::Max => "max",
            Agg::Sum => "sum",
            Agg::Count => "count",
            Agg::Last => "last",
            Agg::Rate => "rate",
            Agg::Delta => "delta",
            Agg::PctChange => "pct_change",
        }
    }
}

/// A series: a metric and the labels that narrow it (none: every series of the metric,
/// one alert instance each).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Series {
    /// The metric name.
    pub metric: String,
    /// `label = value` pairs, sorted by label, each label once.
    pub labels: Vec<(String, String)>,
}

impl Series {
    /// A series of `metric` without labels.
    pub fn of(metric: &str) -> Series {
        Series {
            metric: metric.to_string(),
            labels: Vec::new(),
        }
    }
}

/// Words that are not metric names unless quoted.
pub const KEYWORDS: [&str; 8] = [
    "and",
    "or",
    "not",
    "for",
    "resolve",
    "when",
    "keep_firing_for",
    "absent",
];

/// Whether `name` can be written without quotes.
fn is_bare_metric(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        && !name.ends_with('.')
        && !KEYWORDS.contains(&name)
}

/// A quoted string, with `"` and `\` escaped.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A duration in its largest whole unit: `120` is `2m`.
pub fn duration_text(s: u64) -> String {
    match s {
        s if s > 0 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s > 0 && s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

impl fmt::Display for Series {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_bare_metric(&self.metric) {
            f.write_str(&self.metric)?;
        } else {
            f.write_str(&quoted(&self.metric))?;
        }
        if !self.labels.is_empty() {
            f.write_str("{")?;
            for (i, (k, v)) in self.labels.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{k}={}", quoted(v))?;
            }
            f.write_str("}")?;
        }
        Ok(())
    }
}

impl Expr {
    /// Binding strength: sums 1, products 2, negation 3, atoms 4.
    fn precedence(&self) -> u8 {
        match self {
            Expr::Binary(_, ArithOp::Add | ArithOp::Sub, _) => 1,
            Expr::Binary(_, ArithOp::Mul | ArithOp::Div, _) => 2,
            Expr::Neg(_) => 3,
            _ => 4,
        }
    }

    fn write(&self, f: &mut fmt::Formatter<'_>, at_least: u8) -> fmt::Result {
        let parens = self.precedence() < at_least;
        if parens {
            f.write_str("(")?;
        }
        match self {
            Expr::Number(n) => write!(f, "{n}")?,
            Expr::Series(s) => write!(f, "{s}")?,
            Expr::Aggregate(agg, s, window) => {
                write!(f, "{}({s}, {})", agg.name(), duration_text(*window))?
            }
            Expr::Neg(e) => {
                f.write_str("-")?;
                e.write(f, 3)?;
            }
            Expr::Binary(a, op, b) => {
                let p = self.precedence();
                a.write(f, p)?;
                write!(f, " {} ", op.symbol())?;
                b.write(f, p + 1)?;
            }
        }
        if parens {
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, 1)
    }
}

impl Cond {
    /// Binding strength: `or` 1, `and` 2, `not` 3, comparisons 4.
    fn precedence(&self) -> u8 {
        match self {
            Cond::Or(..) => 1,
            Cond::And(..) => 2,
            Cond::Not(_) => 3,
            _ => 4,
        }
    }

    fn write(&self, f: &mut fmt::Formatter<'_>, at_least: u8) -> fmt::Result {
        let parens = self.precedence() < at_least;
        if parens {
            f.write_str("(")?;
        }
        match self {
            Cond::Or(a, b) => {
                a.write(f, 1)?;
                f.write_str(" or ")?;
                b.write(f, 2)?;
            }
            Cond::And(a, b) => {
                a.write(f, 2)?;
                f.write_str(" and ")?;
                b.write(f, 3)?;
            }
            Cond::Not(c) => {
                f.write_str("not ")?;
                c.write(f, 3)?;
            }
            Cond::Compare(a, op, b) => write!(f, "{a} {} {b}", op.symbol())?,
            Cond::Absent(s, d) => write!(f, "absent({s}, {})", duration_text(*d))?,
        }
        if parens {
            f.write_str(")")?;
        }
        Ok(())
    }

    /// Every series the condition reads, with the longest window it needs (0: only the
    /// payload's own value), in order of first appearance.
    pub fn series(&self) -> Vec<(&Series, u64)> {
        let mut out: Vec<(&Series, u64)> = Vec::new();
        fn add<'a>(out: &mut Vec<(&'a Series, u64)>, s: &'a Series, window: u64) {
            match out.iter_mut().find(|(x, _)| *x == s) {
                Some((_, w)) => *w = (*w).max(window),
                None => out.push((s, window)),
            }
        }
        fn expr<'a>(out: &mut Vec<(&'a Series, u64)>, e: &'a Expr) {
            match e {
                Expr::Number(_) => {}
                Expr::Series(s) => add(out, s, 0),
                Expr::Aggregate(_, s, w) => add(out, s, *w),
                Expr::Neg(e) => expr(out, e),
                Expr::Binary(a, _, b) => {
                    expr(out, a);
                    expr(out, b);
                }
            }
        }
        fn cond<'a>(out: &mut Vec<(&'a Series, u64)>, c: &'a Cond) {
            match c {
                Cond::Or(a, b) | Cond::And(a, b) => {
                    cond(out, a);
                    cond(out, b);
                }
                Cond::Not(c) => cond(out, c),
                Cond::Compare(a, _, b) => {
                    expr(out, a);
                    expr(out, b);
                }
                Cond::Absent(s, _) => add(out, s, 0),
            }
        }
        cond(&mut out, self);
        out
    }
}

impl fmt::Display for Cond {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, 1)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.condition)?;
        if let Some(d) = self.for_s {
            write!(f, " for {}", duration_text(d))?;
        }
        if let Some(c) = &self.resolve {
            write!(f, " resolve when {c}")?;
        }
        if let Some(d) = self.keep_firing_for_s {
            write!(f, " keep_firing_for {}", duration_text(d))?;
        }
        Ok(())
    }
}

/// A rule that does not parse or check: what is wrong and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleError {
    /// What is wrong, e.g. "expected a duration after `for`, found `x`".
    pub message: String,
    /// 1-based line of the rule text.
    pub line: usize,
    /// 1-based column (in characters) of that line.
    pub column: usize,
    /// Byte offset in the rule text.
    pub offset: usize,
}

impl RuleError {
    /// An error at byte `offset` of `text`.
    pub fn at(text: &str, offset: usize, message: impl Into<String>) -> RuleError {
        let offset = offset.min(text.len());
        let before = &text[..floor_char_boundary(text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        RuleError {
            message: message.into(),
            line,
            column,
            offset,
        }
    }

    /// The message, then the line of `text` it is on with a caret under the place:
    ///
    /// ```text
    /// line 1, column 21: expected a duration after `for`, found `x`
    ///   system.load.1 >= 4 for x
    ///                          ^
    /// ```
    pub fn render(&self, text: &str) -> String {
        let line_text = text.lines().nth(self.line - 1).unwrap_or("");
        format!(
            "line {}, column {}: {}\n  {line_text}\n  {}^",
            self.line,
            self.column,
            self.message,
            " ".repeat(self.column - 1)
        )
    }
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl std::error::Error for RuleError {}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests;
