//! A topology's graph, laid out in layers (a component one layer right of its furthest
//! input) and drawn as SVG: components as boxes with their parallelism, streams as
//! edges labelled with their grouping and rate. Element ids (`node-<id>`,
//! `edge-<from>-<to>-<stream>`) let the page's script update figures and colours.

use squall_topology::Topology;

use super::kind_name;

/// One component.
#[derive(Clone, Debug)]
pub struct Node {
    /// Its id.
    pub id: String,
    /// `spout` or `bolt`.
    pub kind: &'static str,
    /// Its tasks.
    pub parallelism: usize,
    layer: usize,
    row: usize,
}

/// One subscription: `to` reads `from`'s `stream`.
#[derive(Clone, Debug)]
pub struct Edge {
    /// The topology (element ids are unique across topologies).
    pub topology: String,
    /// The upstream component.
    pub from: String,
    /// The subscriber.
    pub to: String,
    /// The stream.
    pub stream: String,
    /// The grouping (`shuffle`, `fields(device)`, ...).
    pub grouping: String,
}

impl Edge {
    /// Its element id.
    pub fn dom_id(&self) -> String {
        dom(&format!(
            "edge-{}-{}-{}-{}",
            self.topology, self.from, self.to, self.stream
        ))
    }
}

/// A laid-out topology graph.
#[derive(Clone, Debug)]
pub struct Graph {
    /// The topology.
    pub name: String,
    /// Components, in topology order.
    pub nodes: Vec<Node>,
    /// Subscriptions.
    pub edges: Vec<Edge>,
}

/// An id usable in HTML: letters, digits, `-` and `_`; anything else becomes `_`.
pub(crate) fn dom(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// HTML-escaped text.
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

const W: usize = 150;
const H: usize = 58;
const GAP_X: usize = 80;
const GAP_Y: usize = 34;
const PAD: usize = 16;

impl Graph {
    /// The graph of `topology` (components come validated: inputs before subscribers).
    pub fn of(topology: &Topology) -> Graph {
        let mut nodes: Vec<Node> = Vec::new();
        let mut edges = Vec::new();
        for c in topology.components() {
            let mut layer = 0;
            for input in &c.inputs {
                if let Some(n) = nodes.iter().find(|n| n.id == input.from) {
                    layer = layer.max(n.layer + 1);
                }
                edges.push(Edge {
                    topology: topology.name().to_string(),
                    from: input.from.to_string(),
                    to: c.id.to_string(),
                    stream: input.stream.to_string(),
                    grouping: input.grouping.to_string(),
                });
            }
            let row = nodes.iter().filter(|n| n.layer == layer).count();
            nodes.push(Node {
                id: c.id.to_string(),
                kind: kind_name(c.kind),
                parallelism: c.parallelism,
                layer,
                row,
            });
        }
        Graph {
            name: topology.name().to_string(),
            nodes,
            edges,
        }
    }

    fn at(&self, id: &str) -> Option<(usize, usize)> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .map(|n| (PAD + n.layer * (W + GAP_X), PAD + n.row * (H + GAP_Y)))
    }

    /// The element id of component `id`'s box.
    pub fn node_dom_id(&self, id: &str) -> String {
        dom(&format!("node-{}-{id}", self.name))
    }

    /// The graph as an SVG element; its components link to their pages under
    /// `/ui/topology/<topology>/`.
    pub fn svg(&self) -> String {
        let topology = &self.name;
        let layers = self.nodes.iter().map(|n| n.layer).max().unwrap_or(0) + 1;
        let rows = self.nodes.iter().map(|n| n.row).max().unwrap_or(0) + 1;
        let width = 2 * PAD + layers * W + (layers - 1) * GAP_X;
        let height = 2 * PAD + rows * H + (rows - 1) * GAP_Y + 10;
        let mut s = format!(
            r#"<svg class="graph" viewBox="0 0 {width} {height}" style="max-width: {width}px" role="img" aria-label="topology {t}"><defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"/></marker></defs>"#,
            t = esc(topology)
        );
        for e in &self.edges {
            let (Some((x1, y1)), Some((x2, y2))) = (self.at(&e.from), self.at(&e.to)) else {
                continue;
            };
            let (sx, sy) = (x1 + W, y1 + H / 2);
            let (tx, ty) = (x2, y2 + H / 2);
            let mx = (sx + tx) / 2;
            let stream = if e.stream == "default" {
                String::new()
            } else {
                format!("{} · ", e.stream)
            };
            s.push_str(&format!(
                r#"<g class="edge" id="{id}"><path d="M {sx} {sy} C {mx} {sy}, {mx} {ty}, {tx} {ty}" marker-end="url(#arrow)"/><text x="{lx}" y="{ly}" text-anchor="middle"><tspan class="grouping">{stream}{g}</tspan><tspan class="rate" x="{lx}" dy="13">–</tspan></text></g>"#,
                id = e.dom_id(),
                lx = mx,
                ly = (sy + ty) / 2 - 8,
                g = esc(&e.grouping),
            ));
        }
        for n in &self.nodes {
            let (x, y) = self.at(&n.id).expect("a node is placed");
            s.push_str(&format!(
                r#"<a href="/ui/topology/{t}/{id}"><g class="node {kind} load-low" id="{dom}" data-component="{id}"><rect x="{x}" y="{y}" width="{W}" height="{H}" rx="6"/><text class="name" x="{tx}" y="{ny}">{id} ×{p}</text><text class="figures" x="{tx}" y="{fy}">–</text></g></a>"#,
                t = esc(topology),
                id = esc(&n.id),
                kind = n.kind,
                dom = self.node_dom_id(&n.id),
                tx = x + 10,
                ny = y + 22,
                fy = y + 42,
                p = n.parallelism,
            ));
        }
        s.push_str("</svg>");
        s
    }
}
