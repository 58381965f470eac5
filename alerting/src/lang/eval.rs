//! Compiled rules: a [`Rule`]'s series resolved to slots once, its conditions flattened to
//! postfix programs that evaluate with no parsing, no string lookup and (once the scratch
//! stack has grown to the program's depth) no allocation.
//!
//! Values are three-valued: a number, or *no value* (a missing series, a window with too
//! few points, a division by zero), carried as NaN. Comparisons with no value give no
//! value; `and`, `or` and `not` follow Kleene's logic (`false and ?` is false, `true or ?`
//! is true, anything else with `?` is `?`). A condition with no value neither fires nor
//! clears an alert.

use super::{Agg, ArithOp, CmpOp, Cond, Expr, Rule, Series};

/// One step of a program (postfix).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    /// Push a constant.
    Num(f64),
    /// Push slot `0`'s value in the payload.
    Value(u16),
    /// Push an aggregate of slot `1`'s window of `2` seconds.
    Agg(Agg, u16, u64),
    /// Push whether slot `0` has had no point for `1` seconds.
    Absent(u16, u64),
    Neg,
    Arith(ArithOp),
    Cmp(CmpOp),
    Not,
    And,
    Or,
}

/// A condition as a postfix program.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    ops: Vec<Op>,
    /// The deepest the stack gets.
    depth: usize,
}

/// What a program reads, for one evaluation.
pub trait Inputs {
    /// Slot `slot`'s value in the payload being evaluated.
    fn value(&self, slot: usize) -> Option<f64>;
    /// `agg` over slot `slot`'s points in the `window_s` seconds ending now.
    fn aggregate(&self, slot: usize, agg: Agg, window_s: u64) -> Option<f64>;
    /// Seconds since slot `slot`'s last point (`None`: it never sent one).
    fn silent_for(&self, slot: usize) -> Option<f64>;
}

/// A slot: a series a rule reads, and the longest window it needs of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Slot {
    /// The series.
    pub series: Series,
    /// The longest aggregate window over it, in seconds (0: none).
    pub window_s: u64,
}

/// A rule, compiled.
#[derive(Clone, Debug, PartialEq)]
pub struct Compiled {
    /// The rule.
    pub rule: Rule,
    /// The series it reads: slot `i` is `slots[i]`.
    pub slots: Vec<Slot>,
    condition: Program,
    resolve: Option<Program>,
    /// The left side of the condition's first comparison: the value notifications report.
    reported: Option<Program>,
    /// Whether the condition or the resolve condition uses `absent` (evaluated on ticks
    /// too).
    pub uses_absent: bool,
}

impl Compiled {
    /// Compiles `rule`.
    pub fn new(rule: Rule) -> Compiled {
        let mut slots: Vec<Slot> = Vec::new();
        let condition = compile(&rule.condition, &mut slots);
        let resolve = rule.resolve.as_ref().map(|c| compile(c, &mut slots));
        let reported = first_comparison(&rule.condition).map(|e| compile_expr(e, &mut slots));
        let uses_absent = condition.ops.iter().any(|o| matches!(o, Op::Absent(..)))
            || resolve
                .as_ref()
                .is_some_and(|p| p.ops.iter().any(|o| matches!(o, Op::Absent(..))));
        Compiled {
            rule,
            slots,
            condition,
            resolve,
            reported,
            uses_absent,
        }
    }

    /// The value notifications report: the left side of the condition's first
    /// comparison (`avg(system.load.1, 5m)` in `avg(system.load.1, 5m) >= 4`), if it has a
    /// value.
    pub fn reported(&self, inputs: &impl Inputs, scratch: &mut Vec<f64>) -> Option<f64> {
        let p = self.reported.as_ref()?;
        Some(run(p, inputs, scratch)).filter(|v| !v.is_nan())
    }

    /// The longest window of any slot, in seconds: how long points must be kept.
    pub fn longest_window_s(&self) -> u64 {
        self.slots.iter().map(|s| s.window_s).max().unwrap_or(0)
    }

    /// Evaluates the condition: `Some(holds)`, or `None` when it has no value.
    pub fn condition(&self, inputs: &impl Inputs, scratch: &mut Vec<f64>) -> Option<bool> {
        truth(run(&self.condition, inputs, scratch))
    }

    /// Evaluates what clears a firing alert: the `resolve when` condition, else the
    /// condition's negation. `None`: no value.
    pub fn clears(&self, inputs: &impl Inputs, scratch: &mut Vec<f64>) -> Option<bool> {
        let holds = match &self.resolve {
            Some(_) => None,
            None => self.condition(inputs, scratch),
        };
        self.clears_given(holds, inputs, scratch)
    }

    /// [`Compiled::clears`] when the condition was evaluated already (`holds`): without a
    /// `resolve when`, its negation, with no second run.
    pub fn clears_given(
        &self,
        holds: Option<bool>,
        inputs: &impl Inputs,
        scratch: &mut Vec<f64>,
    ) -> Option<bool> {
        match &self.resolve {
            Some(p) => truth(run(p, inputs, scratch)),
            None => holds.map(|h| !h),
        }
    }
}

fn truth(v: f64) -> Option<bool> {
    (!v.is_nan()).then_some(v != 0.0)
}

fn slot_of(slots: &mut Vec<Slot>, series: &Series, window_s: u64) -> u16 {
    let i = match slots.iter().position(|s| s.series == *series) {
        Some(i) => {
            slots[i].window_s = slots[i].window_s.max(window_s);
            i
        }
        None => {
            slots.push(Slot {
                series: series.clone(),
                window_s,
            });
            slots.len() - 1
        }
    };
    u16::try_from(i).expect("a rule of at most 4 KiB reads fewer than 65,536 series")
}

fn first_comparison(c: &Cond) -> Option<&Expr> {
    match c {
        Cond::Compare(a, _, _) => Some(a),
        Cond::Or(a, b) | Cond::And(a, b) => first_comparison(a).or_else(|| first_comparison(b)),
        Cond::Not(c) => first_comparison(c),
        Cond::Absent(..) => None,
    }
}

fn compile_expr(e: &Expr, slots: &mut Vec<Slot>) -> Program {
    let mut ops = Vec::new();
    push_expr(e, slots, &mut ops);
    finish(ops)
}

fn push_expr(e: &Expr, slots: &mut Vec<Slot>, ops: &mut Vec<Op>) {
    match e {
        Expr::Number(n) => ops.push(Op::Num(*n)),
        Expr::Series(s) => ops.push(Op::Value(slot_of(slots, s, 0))),
        Expr::Aggregate(agg, s, w) => ops.push(Op::Agg(*agg, slot_of(slots, s, *w), *w)),
        Expr::Neg(e) => {
            push_expr(e, slots, ops);
            ops.push(Op::Neg);
        }
        Expr::Binary(a, op, b) => {
            push_expr(a, slots, ops);
            push_expr(b, slots, ops);
            ops.push(Op::Arith(*op));
        }
    }
}

/// A program of `ops`, with the depth its stack reaches.
fn finish(ops: Vec<Op>) -> Program {
    let mut depth: usize = 0;
    let mut max = 0;
    for op in &ops {
        match op {
            Op::Num(_) | Op::Value(_) | Op::Agg(..) | Op::Absent(..) => depth += 1,
            Op::Neg | Op::Not => {}
            _ => depth -= 1,
        }
        max = max.max(depth);
    }
    Program { ops, depth: max }
}

fn compile(root: &Cond, slots: &mut Vec<Slot>) -> Program {
    fn cond(c: &Cond, slots: &mut Vec<Slot>, ops: &mut Vec<Op>) {
        match c {
            Cond::Or(a, b) | Cond::And(a, b) => {
                cond(a, slots, ops);
                cond(b, slots, ops);
                ops.push(if matches!(c, Cond::Or(..)) {
                    Op::Or
                } else {
                    Op::And
                });
            }
            Cond::Not(c) => {
                cond(c, slots, ops);
                ops.push(Op::Not);
            }
            Cond::Compare(a, op, b) => {
                push_expr(a, slots, ops);
                push_expr(b, slots, ops);
                ops.push(Op::Cmp(*op));
            }
            Cond::Absent(s, d) => ops.push(Op::Absent(slot_of(slots, s, 0), *d)),
        }
    }
    let mut ops = Vec::new();
    cond(root, slots, &mut ops);
    finish(ops)
}

const NO_VALUE: f64 = f64::NAN;

fn of(v: Option<f64>) -> f64 {
    v.filter(|v| v.is_finite()).unwrap_or(NO_VALUE)
}

fn boolean(b: Option<bool>) -> f64 {
    match b {
        Some(true) => 1.0,
        Some(false) => 0.0,
        None => NO_VALUE,
    }
}

/// Runs `program`; its result is 1.0 (true), 0.0 (false) or NaN (no value).
fn run(program: &Program, inputs: &impl Inputs, stack: &mut Vec<f64>) -> f64 {
    stack.clear();
    stack.reserve(program.depth);
    for op in &program.ops {
        let v = match *op {
            Op::Num(n) => n,
            Op::Value(s) => of(inputs.value(usize::from(s))),
            Op::Agg(agg, s, w) => of(inputs.aggregate(usize::from(s), agg, w)),
            Op::Absent(s, d) => match inputs.silent_for(usize::from(s)) {
                Some(silent) => boolean(Some(silent >= d as f64)),
                // Never seen: absent once the device has been watched for D (the
                // caller's silent_for says so); unknown here.
                None => NO_VALUE,
            },
            Op::Neg => {
                let a = stack.pop().unwrap_or(NO_VALUE);
                -a
            }
            Op::Arith(op) => {
                let b = stack.pop().unwrap_or(NO_VALUE);
                let a = stack.pop().unwrap_or(NO_VALUE);
                let r = match op {
                    ArithOp::Add => a + b,
                    ArithOp::Sub => a - b,
                    ArithOp::Mul => a * b,
                    ArithOp::Div => a / b,
                };
                if r.is_finite() {
                    r
                } else {
                    NO_VALUE
                }
            }
            Op::Cmp(op) => {
                let b = stack.pop().unwrap_or(NO_VALUE);
                let a = stack.pop().unwrap_or(NO_VALUE);
                if a.is_nan() || b.is_nan() {
                    NO_VALUE
                } else {
                    boolean(Some(op.holds(a, b)))
                }
            }
            Op::Not => {
                let a = stack.pop().unwrap_or(NO_VALUE);
                boolean(truth(a).map(|a| !a))
            }
            Op::And | Op::Or => {
                let b = truth(stack.pop().unwrap_or(NO_VALUE));
                let a = truth(stack.pop().unwrap_or(NO_VALUE));
                let and = matches!(op, Op::And);
                boolean(match (a, b) {
                    (Some(x), Some(y)) => Some(if and { x && y } else { x || y }),
                    // Kleene: a known operand that decides alone.
                    (Some(x), None) | (None, Some(x)) if x != and => Some(x),
                    _ => None,
                })
            }
        };
        stack.push(v);
    }
    stack.pop().unwrap_or(NO_VALUE)
}

/// A series' recent points, oldest first, for window aggregates.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Window {
    points: std::collections::VecDeque<(f64, f64)>,
}

impl Window {
    /// Adds a point at event time `t` (points not after the last are ignored), and drops
    /// those older than `keep_s` before it.
    pub fn push(&mut self, t: f64, value: f64, keep_s: u64) {
        if self.points.back().is_some_and(|(last, _)| *last >= t) {
            return;
        }
        self.points.push_back((t, value));
        let oldest = t - keep_s as f64;
        while self.points.front().is_some_and(|(pt, _)| *pt < oldest) {
            self.points.pop_front();
        }
    }

    /// The time of the latest point.
    pub fn last_time(&self) -> Option<f64> {
        self.points.back().map(|(t, _)| *t)
    }

    /// How many points are kept.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether no point is kept.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// `agg` over the points in `(now - window_s, now]`.
    pub fn aggregate(&self, agg: Agg, now: f64, window_s: u64) -> Option<f64> {
        let from = now - window_s as f64;
        let mut points = self
            .points
            .iter()
            .filter(|(t, _)| *t > from && *t <= now)
            .copied();
        let (t0, first) = match points.next() {
            Some(p) => p,
            None => return (agg == Agg::Count).then_some(0.0),
        };
        let (mut n, mut sum, mut min, mut max) = (1.0, first, first, first);
        let (mut t1, mut last) = (t0, first);
        for (t, v) in points {
            n += 1.0;
            sum += v;
            min = min.min(v);
            max = max.max(v);
            (t1, last) = (t, v);
        }
        let two = n >= 2.0;
        match agg {
            Agg::Avg => Some(sum / n),
            Agg::Min => Some(min),
            Agg::Max => Some(max),
            Agg::Sum => Some(sum),
            Agg::Count => Some(n),
            Agg::Last => Some(last),
            Agg::Rate => (two && t1 > t0).then(|| (last - first) / (t1 - t0)),
            Agg::Delta => two.then_some(last - first),
            Agg::PctChange => (two && first != 0.0).then(|| 100.0 * (last - first) / first),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lang::parse;

    /// Inputs from a table: values and windows per slot, silence per slot.
    struct Table {
        values: Vec<Option<f64>>,
        windows: Vec<Window>,
        silent: Vec<Option<f64>>,
        now: f64,
    }

    impl Inputs for Table {
        fn value(&self, slot: usize) -> Option<f64> {
            self.values[slot]
        }
        fn aggregate(&self, slot: usize, agg: Agg, window_s: u64) -> Option<f64> {
            self.windows[slot].aggregate(agg, self.now, window_s)
        }
        fn silent_for(&self, slot: usize) -> Option<f64> {
            self.silent[slot]
        }
    }

    fn compiled(text: &str) -> Compiled {
        Compiled::new(parse(text).unwrap())
    }

    fn table(values: &[Option<f64>]) -> Table {
        Table {
            values: values.to_vec(),
            windows: vec![Window::default(); values.len()],
            silent: vec![None; values.len()],
            now: 0.0,
        }
    }

    #[test]
    fn series_become_slots_once_with_their_longest_window() {
        let c = compiled("avg(x, 5m) > 1 and x > 0 or max(x, 10m) > y resolve when z < 1");
        let slots: Vec<(String, u64)> = c
            .slots
            .iter()
            .map(|s| (s.series.to_string(), s.window_s))
            .collect();
        assert_eq!(
            slots,
            vec![("x".into(), 600), ("y".into(), 0), ("z".into(), 0)]
        );
        assert_eq!(c.longest_window_s(), 600);
    }

    #[test]
    fn arithmetic_and_comparisons() {
        let mut s = Vec::new();
        let c = compiled("memPhysUsed / memPhysTotal > 0.9");
        assert_eq!(
            c.condition(&table(&[Some(95.0), Some(100.0)]), &mut s),
            Some(true)
        );
        assert_eq!(
            c.condition(&table(&[Some(50.0), Some(100.0)]), &mut s),
            Some(false)
        );
        assert_eq!(
            c.clears(&table(&[Some(50.0), Some(100.0)]), &mut s),
            Some(true)
        );
        // No value: a missing series, a division by zero.
        assert_eq!(c.condition(&table(&[None, Some(100.0)]), &mut s), None);
        assert_eq!(c.condition(&table(&[Some(1.0), Some(0.0)]), &mut s), None);
        assert_eq!(c.clears(&table(&[Some(1.0), Some(0.0)]), &mut s), None);
        let c = compiled("-(a - b) * 2 + 1 == -3");
        assert_eq!(
            c.condition(&table(&[Some(5.0), Some(3.0)]), &mut s),
            Some(true)
        );
    }

    #[test]
    fn logic_is_kleenes() {
        let mut s = Vec::new();
        let c = compiled("a > 0 and b > 0");
        assert_eq!(c.condition(&table(&[Some(0.0), None]), &mut s), Some(false));
        assert_eq!(c.condition(&table(&[Some(1.0), None]), &mut s), None);
        let c = compiled("a > 0 or b > 0");
        assert_eq!(c.condition(&table(&[Some(1.0), None]), &mut s), Some(true));
        assert_eq!(c.condition(&table(&[Some(0.0), None]), &mut s), None);
        let c = compiled("not a > 0");
        assert_eq!(c.condition(&table(&[None]), &mut s), None);
        assert_eq!(c.condition(&table(&[Some(0.0)]), &mut s), Some(true));
    }

    #[test]
    fn resolve_when_is_its_own_condition() {
        let mut s = Vec::new();
        let c = compiled("a >= 4 resolve when a < 3");
        // Between the thresholds: neither holds nor clears.
        assert_eq!(c.condition(&table(&[Some(3.5)]), &mut s), Some(false));
        assert_eq!(c.clears(&table(&[Some(3.5)]), &mut s), Some(false));
        assert_eq!(c.clears(&table(&[Some(2.0)]), &mut s), Some(true));
    }

    #[test]
    fn windows_aggregate_their_points() {
        let mut w = Window::default();
        for (t, v) in [(0.0, 10.0), (60.0, 20.0), (120.0, 40.0), (180.0, 30.0)] {
            w.push(t, v, 600);
        }
        w.push(100.0, 99.0, 600); // late: ignored
        assert_eq!(w.len(), 4);
        // (80, 180]: 40 at 120 and 30 at 180.
        let at = |agg| w.aggregate(agg, 180.0, 100);
        assert_eq!(at(Agg::Count), Some(2.0));
        assert_eq!(at(Agg::Avg), Some(35.0));
        assert_eq!(at(Agg::Min), Some(30.0));
        assert_eq!(at(Agg::Max), Some(40.0));
        assert_eq!(at(Agg::Sum), Some(70.0));
        assert_eq!(at(Agg::Last), Some(30.0));
        assert_eq!(at(Agg::Delta), Some(-10.0));
        assert_eq!(at(Agg::Rate), Some(-10.0 / 60.0));
        assert_eq!(at(Agg::PctChange), Some(-25.0));
        assert_eq!(
            w.aggregate(Agg::Rate, 180.0, 30),
            None,
            "one point has no rate"
        );
        assert_eq!(
            w.aggregate(Agg::Avg, 1000.0, 60),
            None,
            "no points: no value"
        );
        assert_eq!(w.aggregate(Agg::Count, 1000.0, 60), Some(0.0));
        // Kept for at most keep_s.
        w.push(1000.0, 1.0, 600);
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn absent_is_silence_for_its_duration() {
        let mut s = Vec::new();
        let c = compiled("absent(x, 10m)");
        let mut t = table(&[None]);
        t.silent = vec![Some(599.0)];
        assert_eq!(c.condition(&t, &mut s), Some(false));
        t.silent = vec![Some(600.0)];
        assert_eq!(c.condition(&t, &mut s), Some(true));
    }

    #[test]
    fn evaluation_allocates_nothing_once_warm() {
        let c = compiled("avg(a, 5m) > 1 and (b - c) / d > 0.5 or not absent(e, 1m)");
        let mut scratch = Vec::new();
        let mut t = table(&[Some(1.0), Some(2.0), Some(1.0), Some(2.0), None]);
        t.silent = vec![Some(1.0); 5];
        t.windows[0].push(0.0, 2.0, 300);
        let _ = c.condition(&t, &mut scratch);
        let capacity = scratch.capacity();
        for _ in 0..100 {
            let _ = c.condition(&t, &mut scratch);
        }
        assert_eq!(scratch.capacity(), capacity);
        assert!(capacity >= c.condition.depth);
    }
}
