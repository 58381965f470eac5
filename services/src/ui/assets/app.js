// squall's UI: reads the JSON endpoints every second while the page is visible, one
// request at a time, and fills the page in. No library, no build step.
"use strict";
const squall = (() => {
  const fmt = (n) => {
    if (n === null || n === undefined) return "–";
    if (typeof n !== "number") return String(n);
    if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(1) + "M";
    if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(1) + "k";
    return Number.isInteger(n) ? String(n) : n.toFixed(1);
  };
  const pct = (x) => (x === null || x === undefined ? "–" : Math.round(x * 100) + "%");
  const time = (s) => (s ? new Date(s * 1000).toISOString().replace(".000Z", "Z") : "–");
  const timeMs = (ms) => (ms ? new Date(ms).toISOString().replace(".000Z", "Z") : "–");
  const cell = (v, cls) => {
    const td = document.createElement("td");
    td.textContent = v;
    if (cls) td.className = cls;
    return td;
  };
  const fill = (tbody, rows, make) => {
    const out = [];
    for (const r of rows) {
      const tr = document.createElement("tr");
      for (const td of make(r)) tr.appendChild(td);
      out.push(tr);
    }
    tbody.replaceChildren(...out);
  };
  const status = (text) => {
    const s = document.getElementById("status");
    if (s) s.textContent = text;
  };
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const ms = (x) => (x === null || x === undefined ? "–" : x < 1 ? (x * 1000).toFixed(0) + " µs" : x.toFixed(1) + " ms");
  const failures = (total, by) => {
    const parts = Object.entries(by || {}).map(([r, n]) => r + " " + n);
    return parts.length ? total + " (" + parts.join(", ") + ")" : String(total);
  };

  // Polls `url` every second while the page is visible; a hidden page asks nothing.
  async function poll(url, render) {
    for (;;) {
      if (!document.hidden) {
        try {
          const r = await fetch(url, { credentials: "same-origin", cache: "no-store" });
          if (r.status === 401) {
            location.href = "/ui/login";
            return;
          }
          render(await r.json());
          status("live: updated " + new Date().toLocaleTimeString());
        } catch (e) {
          status("live: " + e);
        }
      }
      await sleep(1000);
    }
  }

  function topologies() {
    poll("/ui/api/topologies", (data) => {
      for (const t of data.topologies) {
        const key = t.name.replace(/[^A-Za-z0-9_-]/g, "_");
        for (const c of t.components) {
          const g = document.getElementById(c.dom_id);
          if (g) {
            g.classList.remove("load-low", "load-medium", "load-high");
            g.classList.add("load-" + c.load);
            g.classList.toggle("culprit", c.culprit);
            const figures = g.querySelector(".figures");
            const rate = c.kind === "spout" ? c.emitted_per_s : c.executed_per_s;
            figures.textContent =
              fmt(rate) + "/s · cap " + pct(c.capacity) + (c.kind === "bolt" ? " · q " + pct(c.queue_fill) : "");
          }
        }
        for (const e of t.edges) {
          const g = document.getElementById(e.id);
          if (g) g.querySelector(".rate").textContent = fmt(e.per_s) + " tuples/s";
        }
        const line = document.getElementById("culprits-" + key);
        if (line) {
          line.textContent = t.culprits.length
            ? "Backpressure: " + t.culprits.join(", ") + " (input queue full, at capacity; what is upstream of it waits on it)"
            : "No backpressure.";
          line.classList.toggle("alarm", t.culprits.length > 0);
        }
        const table = document.getElementById("table-" + key);
        if (table) {
          fill(table.tBodies[0], t.components, (c) => {
            const name = document.createElement("td");
            const a = document.createElement("a");
            a.href = "/ui/topology/" + encodeURIComponent(t.name) + "/" + encodeURIComponent(c.id);
            a.textContent = c.id;
            name.appendChild(a);
            if (c.culprit) name.appendChild(Object.assign(document.createElement("span"), { className: "tag", textContent: "culprit" }));
            return [
              name,
              cell(c.kind),
              cell(c.parallelism),
              cell(c.emitted, "num emitted"),
              cell(fmt(c.emitted_per_s), "num"),
              cell(c.executed, "num executed"),
              cell(c.acked, "num acked"),
              cell(failures(c.failed, c.failed_by), "num failed"),
              cell(ms(c.latency_ms), "num latency"),
              cell(pct(c.capacity), "num load-" + c.load),
              cell(pct(c.backpressure), "num"),
              cell(c.kind === "bolt" ? c.queue_depth + " / " + c.queue_capacity : "–", "num"),
              cell(c.last_error ? c.last_error + " (" + timeMs(c.last_error_at_ms) + ")" : ""),
            ];
          });
          table.tBodies[0].querySelectorAll("tr").forEach((tr, i) => (tr.dataset.component = t.components[i].id));
        }
      }
    });
  }

  function component(topology, id) {
    const url = "/ui/api/topologies/" + encodeURIComponent(topology) + "/components/" + encodeURIComponent(id);
    poll(url, (c) => {
      fill(document.querySelector("#tasks tbody"), c.tasks, (t) => [
        cell(t.task),
        cell(t.emitted, "num"),
        cell(t.executed, "num"),
        cell(t.acked, "num"),
        cell(failures(t.failed, t.failed_by), "num"),
        cell(t.panics, "num"),
        cell(ms(t.latency_ms), "num"),
        cell(fmt(t.busy_s), "num"),
        cell(fmt(t.backpressure_s), "num"),
        cell(c.kind === "bolt" ? t.queue_depth + " / " + t.queue_capacity : "–", "num"),
        cell(t.last_error ? t.last_error + " (" + timeMs(t.last_error_at_ms) + ")" : ""),
      ]);
    });
  }

  function alerts() {
    poll("/ui/api/alerts", (a) => {
      fill(document.querySelector("#firing tbody"), a.firing, (x) => [
        cell(x.rule), cell(x.hostname), cell(x.metric || "no data"), cell(x.series), cell(fmt(x.value), "num"), cell(time(x.since)),
      ]);
      fill(document.querySelector("#pending tbody"), a.pending, (x) => [
        cell(x.rule), cell(x.hostname), cell(x.series), cell(time(x.since)),
      ]);
      fill(document.querySelector("#resolved tbody"), a.resolved, (x) => [
        cell(x.rule), cell(x.hostname), cell(x.metric || "no data"), cell(x.series), cell(fmt(x.value), "num"), cell(time(x.since)), cell(time(x.closed_at)),
      ]);
      fill(document.querySelector("#notifications tbody"), a.notifications, (n) => [
        cell(n.id), cell(n.status, "status-" + n.status), cell(n.attempts, "num"), cell(n.code === null ? "–" : n.code, "num"), cell(n.reason), cell(timeMs(n.at_ms)),
      ]);
      fill(document.querySelector("#configs tbody"), a.configs, (c) => [
        cell(c.id, "num"), cell(c.account), cell(c.name), cell(c.rule, "rule"), cell(c.recipients.join(", ")),
      ]);
    });
  }

  function kafka() {
    poll("/ui/api/kafka", (k) => {
      fill(document.querySelector("#partitions tbody"), k.partitions, (p) => [
        cell(p.component), cell(p.group), cell(p.topic), cell(p.partition, "num"),
        cell(p.lag === null ? "–" : fmt(p.lag) + " " + p.lag_unit, "num lag"),
        cell(p.uncommitted, "num"), cell(p.paused ? "paused" : "", p.paused ? "load-high" : ""),
        cell(p.retries, "num retries"), cell(p.dead_lettered, "num"),
      ]);
    });
  }

  return { topologies, component, alerts, kafka };
})();
