//! Test helper: protocol-speaking children in plain Python (no pystorm needed).

/// argv of a Python child that reads messages the way pystorm does (`read()`, `send(m)`),
/// answers the handshake (pid file and `{"pid": N}`), then runs `body`.
pub(crate) fn python_child(body: &str) -> Vec<String> {
    let script = format!(
        r#"
import json, os, sys
def read():
    lines = []
    while True:
        line = sys.stdin.readline()
        if line == "":
            sys.exit(0)
        if line == "end\n":
            return json.loads("".join(lines))
        lines.append(line)
def send(m):
    sys.stdout.write(json.dumps(m) + "\nend\n")
    sys.stdout.flush()
h = read()
open(os.path.join(h["pidDir"], str(os.getpid())), "w").close()
send({{"pid": os.getpid()}})
{body}
"#
    );
    vec!["python3".into(), "-c".into(), script]
}
