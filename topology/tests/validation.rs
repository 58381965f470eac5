//! Every validation message, one test each, plus files, overrides and "all at once".

use std::collections::HashMap;
use std::io::Write;

use serde::Deserialize;
use squall_topology::*;

struct Src(&'static [&'static str]);
impl Spout for Src {
    fn declare_outputs(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(self.0.iter().copied()));
        d.declare_direct_stream("direct", Fields::new(["x"]));
    }
    fn next_tuple(&mut self, _o: &mut SpoutOutputCollector) -> SpoutStatus {
        SpoutStatus::Exhausted
    }
}

struct Pass(&'static [&'static str]);
impl Bolt for Pass {
    fn declare_outputs(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new(self.0.iter().copied()));
    }
    fn execute(&mut self, _t: Tuple, _o: &mut OutputCollector) -> Result<(), BoltError> {
        Ok(())
    }
}

fn messages(b: TopologyBuilder) -> Vec<String> {
    b.build()
        .expect_err("should not validate")
        .0
        .iter()
        .map(|e| e.to_string())
        .collect()
}

fn base() -> TopologyBuilder {
    let mut b = TopologyBuilder::new("t");
    b.set_spout("words", 1, || Src(&["word", "n"]));
    b
}

#[test]
fn unknown_input_suggests_the_closest_id() {
    let mut b = base();
    b.set_bolt("count", 1, || Pass(&["w"]))
        .shuffle_grouping("wrods");
    assert_eq!(
        messages(b),
        ["bolt \"count\": input \"wrods\" doesn't match any component (did you mean \"words\"?)"]
    );
}

#[test]
fn unknown_input_without_close_match_has_no_suggestion() {
    let mut b = base();
    b.set_bolt("count", 1, || Pass(&["w"]))
        .shuffle_grouping("zzz");
    assert_eq!(
        messages(b),
        ["bolt \"count\": input \"zzz\" doesn't match any component"]
    );
}

#[test]
fn unknown_stream_lists_declared_streams() {
    let mut b = base();
    b.set_bolt("count", 1, || Pass(&["w"]))
        .grouping("words", "errors", Grouping::Shuffle);
    assert_eq!(
        messages(b),
        ["bolt \"count\": input \"words\" has no stream \"errors\" (declared streams: default, direct)"]
    );
}

#[test]
fn fields_grouping_on_undeclared_field() {
    let mut b = base();
    b.set_bolt("count", 1, || Pass(&["w"]))
        .fields_grouping("words", ["wrd"]);
    assert_eq!(
        messages(b),
        ["bolt \"count\": fields grouping on field \"wrd\", which stream \"default\" of \"words\" does not declare (declared fields: word, n)"]
    );
}

#[test]
fn partial_key_grouping_on_undeclared_field() {
    let mut b = base();
    b.set_bolt("count", 1, || Pass(&["w"]))
        .partial_key_grouping("words", ["key"]);
    assert_eq!(
        messages(b),
        ["bolt \"count\": partial_key grouping on field \"key\", which stream \"default\" of \"words\" does not declare (declared fields: word, n)"]
    );
}

#[test]
fn fields_grouping_needs_fields() {
    let mut b = base();
    b.set_bolt("count", 1, || Pass(&["w"]))
        .fields_grouping("words", Vec::<String>::new());
    assert_eq!(
        messages(b),
        ["bolt \"count\": input \"words\": fields grouping needs at least one field"]
    );
}

#[test]
fn parallelism_zero() {
    let mut b = TopologyBuilder::new("t");
    b.set_spout("words", 0, || Src(&["word"]));
    assert_eq!(
        messages(b),
        ["spout \"words\": parallelism must be at least 1, got 0"]
    );
}

#[test]
fn duplicate_id() {
    let mut b = base();
    b.set_bolt("words", 1, || Pass(&["w"]))
        .shuffle_grouping("words");
    let m = messages(b);
    assert!(
        m.contains(&"component id \"words\" is used 2 times; ids must be unique".to_string()),
        "{m:?}"
    );
}

#[test]
fn no_spout() {
    let mut b = TopologyBuilder::new("lonely");
    b.set_bolt("a", 1, || Pass(&["w"])).shuffle_grouping("b");
    b.set_bolt("b", 1, || Pass(&["w"])).shuffle_grouping("a");
    let m = messages(b);
    assert_eq!(
        m[0],
        "topology \"lonely\" has no spout; tuples must come from at least one"
    );
}

#[test]
fn cycle_with_its_path() {
    let mut b = base();
    b.set_bolt("a", 1, || Pass(&["w"]))
        .shuffle_grouping("words")
        .shuffle_grouping("c");
    b.set_bolt("b", 1, || Pass(&["w"])).shuffle_grouping("a");
    b.set_bolt("c", 1, || Pass(&["w"])).shuffle_grouping("b");
    assert_eq!(messages(b), ["cycle: a -> b -> c -> a"]);
}

#[test]
fn direct_grouping_needs_a_direct_stream() {
    let mut b = base();
    b.set_bolt("d", 1, || Pass(&["w"]))
        .direct_grouping("words", "default");
    assert_eq!(
        messages(b),
        ["bolt \"d\": input \"words\": direct grouping needs a direct stream, and \"default\" is not declared direct"]
    );
}

#[test]
fn direct_stream_needs_direct_grouping() {
    let mut b = base();
    b.set_bolt("d", 1, || Pass(&["w"]))
        .grouping("words", "direct", Grouping::Shuffle);
    assert_eq!(
        messages(b),
        ["bolt \"d\": input \"words\": stream \"direct\" is declared direct, so it can only be subscribed with the direct grouping"]
    );
}

#[test]
fn bolt_without_inputs() {
    let mut b = base();
    b.set_bolt("orphan", 1, || Pass(&["w"]));
    assert_eq!(
        messages(b),
        ["bolt \"orphan\": bolt has no inputs, so it would never receive a tuple"]
    );
}

#[test]
fn tick_interval_zero() {
    let mut b = base();
    b.set_bolt("t", 1, || Pass(&["w"]))
        .shuffle_grouping("words")
        .tick_interval_ms(0);
    assert_eq!(
        messages(b),
        ["bolt \"t\": tick_interval_ms must be at least 1"]
    );
}

#[test]
fn queue_capacity_zero() {
    let mut b = base();
    b.config().queue_capacity = 0;
    assert_eq!(messages(b), ["topology: queue_capacity must be at least 1"]);
}

#[test]
fn a_valid_topology_orders_bolts_after_their_inputs() {
    let mut b = base();
    b.set_bolt("last", 1, || Pass(&["w"]))
        .shuffle_grouping("mid");
    b.set_bolt("mid", 2, || Pass(&["w"]))
        .fields_grouping("words", ["word"]);
    let t = b.build().unwrap();
    let ids: Vec<&str> = t.components().iter().map(|c| c.id).collect();
    assert_eq!(ids, ["words", "mid", "last"]);
    assert_eq!(t.task_count(), 4);
    let shown = t.to_string();
    assert!(
        shown.contains("<- words:default grouping fields(word)"),
        "{shown}"
    );
}

// ---- files ---------------------------------------------------------------------------

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PassConfig {
    out: String,
}

fn registry() -> Registry {
    let mut r = Registry::new();
    r.register_spout("words", |_: &serde_json::Value| Ok(Src(&["word", "n"])));
    r.register_bolt("pass", |c: &PassConfig| {
        let out: &'static str = intern(&c.out);
        Ok(PassOwned(out))
    });
    r
}

struct PassOwned(&'static str);
impl Bolt for PassOwned {
    fn declare_outputs(&self, d: &mut OutputDeclarer) {
        d.declare(Fields::new([self.0]));
    }
    fn execute(&mut self, _t: Tuple, _o: &mut OutputCollector) -> Result<(), BoltError> {
        Ok(())
    }
}

fn file(ext: &str, text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(ext).tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn file_messages(text: &str) -> Vec<String> {
    let f = file(".toml", text);
    let def = load_topology_file(f.path(), &[], &EnvOverrides::Off).unwrap();
    def.validate(&registry())
        .expect_err("should not validate")
        .0
        .iter()
        .map(|e| e.to_string())
        .collect()
}

const GOOD: &str = r#"
[topology]
name = "good"
queue_capacity = 256
[spouts.words]
type = "words"
[bolts.a]
type = "pass"
out = "w"
parallelism = 2
inputs = [{ from = "words", grouping = "fields", fields = ["word"] }]
[bolts.b]
type = "pass"
out = "w"
tick_interval_ms = 500
inputs = [{ from = "a" }]
"#;

#[test]
fn a_good_file_validates_with_defaults() {
    let f = file(".toml", GOOD);
    let t = load_topology_file(f.path(), &[], &EnvOverrides::Off)
        .unwrap()
        .validate(&registry())
        .unwrap();
    assert_eq!(t.name(), "good");
    assert_eq!(t.config().queue_capacity, 256);
    assert_eq!(t.config().batch_size, 64);
    let b = t.component("b").unwrap();
    assert_eq!(b.parallelism, 1);
    assert_eq!(b.tick_interval_ms, Some(500));
    assert_eq!(b.inputs[0].grouping.name(), "shuffle");
    assert_eq!(t.component("a").unwrap().type_name.as_deref(), Some("pass"));
}

#[test]
fn yaml_files_work_too() {
    let f = file(
        ".yaml",
        "topology:\n  name: y\nspouts:\n  words:\n    type: words\nbolts:\n  a:\n    type: pass\n    out: w\n    parallelism: 3\n    inputs:\n      - from: words\n        grouping: partial_key\n        fields: [word]\n",
    );
    let t = load_topology_file(f.path(), &[], &EnvOverrides::Off)
        .unwrap()
        .validate(&registry())
        .unwrap();
    assert_eq!(t.component("a").unwrap().parallelism, 3);
    assert_eq!(
        t.component("a").unwrap().inputs[0].grouping.name(),
        "partial_key"
    );
}

#[test]
fn environment_and_set_override_the_file_in_that_order() {
    let f = file(".toml", GOOD);
    let env = EnvOverrides::Map(HashMap::from([
        ("SQUALL__BOLTS__A__PARALLELISM".to_string(), "4".to_string()),
        ("SQUALL__BOLTS__B__PARALLELISM".to_string(), "5".to_string()),
        ("SQUALL__TOPOLOGY__BATCH_SIZE".to_string(), "16".to_string()),
        // Not a topology key: must be ignored rather than rejected.
        ("SQUALL__KAFKA__BROKERS".to_string(), "x".to_string()),
    ]));
    let sets = ["bolts.b.parallelism=7".to_string()];
    let t = load_topology_file(f.path(), &sets, &env)
        .unwrap()
        .validate(&registry())
        .unwrap();
    assert_eq!(
        t.component("a").unwrap().parallelism,
        4,
        "environment beats the file"
    );
    assert_eq!(
        t.component("b").unwrap().parallelism,
        7,
        "--set beats the environment"
    );
    assert_eq!(t.config().batch_size, 16);
}

#[test]
fn set_takes_json_values_for_lists() {
    let f = file(".toml", GOOD);
    let sets = [r#"bolts.b.inputs=[{"from":"words","grouping":"global"}]"#.to_string()];
    let t = load_topology_file(f.path(), &sets, &EnvOverrides::Off)
        .unwrap()
        .validate(&registry())
        .unwrap();
    let b = t.component("b").unwrap();
    assert_eq!(
        (b.inputs[0].from, b.inputs[0].grouping.name()),
        ("words", "global")
    );
}

#[test]
fn set_without_equals_is_rejected() {
    let f = file(".toml", GOOD);
    let err = load_topology_file(
        f.path(),
        &["bolts.a.parallelism".into()],
        &EnvOverrides::Off,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "--set expects KEY=VALUE (e.g. bolts.count.parallelism=4), got \"bolts.a.parallelism\""
    );
}

#[test]
fn missing_file_names_the_path() {
    let err = load_topology_file(
        std::path::Path::new("/nonexistent/t.toml"),
        &[],
        &EnvOverrides::Off,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot read topology file /nonexistent/t.toml"),
        "{err}"
    );
}

#[test]
fn unknown_component_type_suggests_a_known_one() {
    let m = file_messages("[topology]\nname='x'\n[spouts.words]\ntype='wrods'\n");
    assert_eq!(
        m,
        ["spout \"words\": unknown component type \"wrods\" (did you mean \"words\"?) (known spout types: words)"]
    );
}

#[test]
fn invalid_options_name_the_option() {
    let m = file_messages(
        "[topology]\nname='x'\n[spouts.words]\ntype='words'\n[bolts.a]\ntype='pass'\noutt='w'\ninputs=[{from='words'}]\n",
    );
    assert_eq!(m.len(), 1);
    assert!(
        m[0].starts_with(
            "bolt \"a\": invalid options for type \"pass\": unknown field `outt`, expected `out`"
        ),
        "{m:?}"
    );
}

#[test]
fn missing_type() {
    let m = file_messages("[topology]\nname='x'\n[spouts.words]\nparallelism=1\n");
    assert_eq!(
        m,
        ["spout \"words\": missing `type` (the registered component type)"]
    );
}

#[test]
fn parallelism_must_be_an_integer() {
    let m =
        file_messages("[topology]\nname='x'\n[spouts.words]\ntype='words'\nparallelism='many'\n");
    assert_eq!(
        m,
        ["spout \"words\": `parallelism` must be an integer, got \"many\""]
    );
}

#[test]
fn negative_parallelism() {
    let m = file_messages("[topology]\nname='x'\n[spouts.words]\ntype='words'\nparallelism=-2\n");
    assert_eq!(
        m,
        ["spout \"words\": parallelism must be at least 1, got -2"]
    );
}

#[test]
fn unknown_grouping_name_suggests_one() {
    let m = file_messages(
        "[topology]\nname='x'\n[spouts.words]\ntype='words'\n[bolts.a]\ntype='pass'\nout='w'\ninputs=[{from='words', grouping='shufle'}]\n",
    );
    assert_eq!(m.len(), 1);
    assert!(
        m[0].starts_with(
            "bolt \"a\": input \"words\": unknown grouping \"shufle\" (did you mean \"shuffle\"?)"
        ),
        "{m:?}"
    );
}

#[test]
fn unknown_custom_grouping() {
    let m = file_messages(
        "[topology]\nname='x'\n[spouts.words]\ntype='words'\n[bolts.a]\ntype='pass'\nout='w'\ninputs=[{from='words', grouping='custom', custom='mine'}]\n",
    );
    assert_eq!(
        m,
        ["bolt \"a\": input \"words\": unknown custom grouping \"mine\" (registered: none)"]
    );
}

#[test]
fn malformed_input_entry() {
    let m = file_messages(
        "[topology]\nname='x'\n[spouts.words]\ntype='words'\n[bolts.a]\ntype='pass'\nout='w'\ninputs=[{form='words'}]\n",
    );
    assert_eq!(m.len(), 1);
    assert!(
        m[0].starts_with("bolt \"a\": inputs[0]: unknown field `form`"),
        "{m:?}"
    );
}

#[test]
fn spouts_take_no_inputs() {
    let m = file_messages(
        "[topology]\nname='x'\n[spouts.words]\ntype='words'\ninputs=[{from='words'}]\n",
    );
    assert_eq!(m, ["spout \"words\": spouts take no inputs"]);
}

#[test]
fn topology_section_problems() {
    let m = file_messages("[topology]\nqueue_capacty=5\n[spouts.words]\ntype='words'\n[extra]\n");
    assert_eq!(m.len(), 3, "{m:?}");
    assert_eq!(m[0], "topology: missing `name` in [topology]");
    assert!(
        m[1].starts_with("topology: [topology]: unknown field `queue_capacty`"),
        "{m:?}"
    );
    assert_eq!(
        m[2],
        "topology: unknown section [extra] (sections: topology, spouts, bolts)"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let m = file_messages(
        r#"
[topology]
name = "broken"
[spouts.words]
type = "wrods"
[bolts.split]
type = "pass"
out = "word"
parallelism = 0
inputs = [{ from = "word" }]
[bolts.count]
type = "pass"
out = "c"
inputs = [{ from = "split", grouping = "fields", fields = ["wrd"] }, { from = "count" }]
"#,
    );
    assert_eq!(m.len(), 5, "{m:#?}");
    let all = m.join("\n");
    for needle in [
        "spout \"words\": unknown component type \"wrods\"",
        "bolt \"split\": parallelism must be at least 1, got 0",
        "bolt \"split\": input \"word\" doesn't match any component (did you mean \"words\"?)",
        "bolt \"count\": fields grouping on field \"wrd\"",
        "cycle: count -> count",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in\n{all}");
    }
}
