// The live page of `zeroserve up` (docs/local-mode.md, "The live page").
// Polls /v1/overview every second with the page token from the URL's fragment
// (#token=...), keeps the autoscaler's figures of the last few minutes per revision,
// and draws them as SVG by hand: no library, nothing downloaded.
"use strict";

(function () {
  const POLL_MS = 1000;
  const MAX_BACKOFF_MS = 5000;
  const GAP_SECONDS = 10; // no figures for this long: the line breaks
  const SVG = "http://www.w3.org/2000/svg";
  const W = 350, H = 160;
  const M = { left: 40, right: 10, top: 22, bottom: 20 };
  const CHARTS = [
    {
      id: "concurrency",
      title: "concurrency",
      series: [["stable_concurrency", "stable"], ["panic_concurrency", "panic"]],
    },
    {
      id: "rps",
      title: "requests/s",
      series: [["stable_rps", "stable"], ["panic_rps", "panic"]],
    },
    { id: "pods", title: "pods", series: [["desired", "desired"], ["ready", "ready"]], step: true },
  ];

  const state = {
    token: readToken(),
    seq: 0,
    now: 0,
    window: 300,
    overview: null,
    points: new Map(), // "namespace/revision" -> [figures...], oldest first
    failures: 0,
  };

  function readToken() {
    const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    return m ? decodeURIComponent(m[1]) : "";
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    for (const c of children) node.append(c);
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    return node;
  }

  function showProblem(text) {
    const p = document.getElementById("problem");
    p.textContent = text;
    p.hidden = !text;
  }

  async function poll() {
    if (!state.token) {
      showProblem(
        "This page needs its token: open it at the URL `zeroserve up` printed " +
          "(the line 'live page: http://.../#token=...')."
      );
      document.getElementById("status").textContent = "no token";
      return;
    }
    let delay = POLL_MS;
    try {
      const r = await fetch(`/v1/overview?since=${state.seq}`, {
        headers: { Authorization: `Bearer ${state.token}` },
        cache: "no-store",
      });
      if (r.status === 401) {
        showProblem(
          "The control API refused this page's token: open the page at the URL the " +
            "running `zeroserve up` printed (a token is good for one run)."
        );
        document.getElementById("status").textContent = "unauthorized";
        delay = MAX_BACKOFF_MS;
      } else if (!r.ok) {
        throw new Error(`the control API answered ${r.status}`);
      } else {
        merge(await r.json());
        state.failures = 0;
        showProblem("");
        render();
      }
    } catch (e) {
      state.failures += 1;
      delay = Math.min(MAX_BACKOFF_MS, POLL_MS * 2 ** state.failures);
      showProblem(`The control API does not answer (is zeroserve up still running?): ${e.message}`);
    }
    setTimeout(poll, delay);
  }

  function merge(data) {
    state.overview = data;
    state.now = data.now;
    state.window = data.window;
    const known = new Set();
    for (const group of data.services) {
      for (const rev of group.revisions) known.add(`${rev.namespace}/${rev.name}`);
    }
    for (const f of data.figures) {
      const key = `${f.namespace}/${f.revision}`;
      const list = state.points.get(key) || [];
      const last = list.length ? list[list.length - 1].seq : 0;
      for (const p of f.points) if (p.seq > last) list.push(p);
      state.points.set(key, list);
    }
    const oldest = state.now - state.window;
    for (const [key, list] of state.points) {
      if (!known.has(key)) {
        state.points.delete(key);
        continue;
      }
      while (list.length && list[0].time < oldest) list.shift();
    }
    state.seq = data.seq;
  }

  function badge(text, kind) {
    return el("span", { class: `badge ${kind}` }, text);
  }

  function link(url) {
    return url ? el("a", { href: url }, url) : el("span", { class: "muted" }, "no URL");
  }

  function render() {
    const data = state.overview;
    const main = document.getElementById("services");
    const groups = data.services.map(renderGroup);
    main.replaceChildren(...groups);
    if (!groups.length) {
      main.append(el("p", { class: "muted" }, "Nothing applied yet: zeroserve apply -f FILE."));
    }
    const at = new Date(data.now * 1000).toLocaleTimeString();
    document.getElementById("status").textContent =
      `updated ${at}; plots keep the last ${Math.round(state.window / 60)} minutes`;
  }

  function renderGroup(group) {
    const head = el(
      "div",
      { class: "service-head" },
      el("h2", {}, `${group.kind === "Service" ? "" : "configuration "}${group.name}`),
      el("span", { class: "muted" }, group.namespace),
      badge(group.ready === "True" ? "Ready" : group.reason || `Ready ${group.ready}`, group.ready),
      link(group.url)
    );
    const box = el("section", { class: "service", "data-service": `${group.namespace}/${group.name}` }, head);
    if (group.message) box.append(el("p", { class: "muted" }, group.message));
    if (group.traffic.length) {
      const rows = group.traffic.map((t) =>
        el(
          "tr",
          {},
          el("td", { class: "num" }, `${t.percent}%`),
          el("td", {}, t.revision + (t.latest ? " (latest)" : "")),
          el("td", {}, t.tag || ""),
          el("td", {}, t.url ? link(t.url) : "")
        )
      );
      box.append(
        el(
          "table",
          { class: "traffic" },
          el("tr", {}, ...["traffic", "revision", "tag", "tag URL"].map((h) => el("th", {}, h))),
          ...rows
        )
      );
    }
    for (const rev of group.revisions) box.append(renderRevision(rev));
    return box;
  }

  function renderRevision(rev) {
    const key = `${rev.namespace}/${rev.name}`;
    const points = state.points.get(key) || [];
    const last = points.length ? points[points.length - 1] : null;
    const head = el(
      "div",
      { class: "service-head" },
      el("h3", {}, rev.name),
      badge(rev.ready === "True" ? "Ready" : rev.reason || `Ready ${rev.ready}`, rev.ready)
    );
    if (last && last.panic) head.append(badge("panic mode", "panic"));
    const desired = rev.desired === null ? "?" : String(rev.desired);
    const facts = [
      `replicas: desired ${desired}, ready ${rev.readyPods} of ${rev.pods}`,
      `traffic ${rev.percent}%`,
    ];
    if (rev.tags.length) facts.push(`tags: ${rev.tags.join(", ")}`);
    if (last) facts.push(`scales on ${last.metric}, target ${last.target} per pod`);
    head.append(el("span", { class: "muted facts" }, facts.join(" · ")));
    const box = el("div", { class: "revision", "data-revision": key }, head);
    if (rev.message) box.append(el("p", { class: "muted" }, rev.message));
    if (!points.length) {
      box.append(el("p", { class: "muted" }, "no figures from the autoscaler yet"));
      return box;
    }
    const charts = el("div", { class: "charts" });
    for (const spec of CHARTS) charts.append(chart(spec, key, points));
    box.append(charts);
    return box;
  }

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  function fmt(v) {
    if (v === null) return "?";
    if (Number.isInteger(v)) return String(v);
    return v >= 10 ? v.toFixed(1) : v.toFixed(2);
  }

  function value(p, name) {
    const v = p[name];
    return name === "desired" && v < 0 ? null : v;
  }

  function chart(spec, key, points) {
    // from the oldest figures kept (at least a minute back) to now
    const span = Math.min(state.window, Math.max(60, state.now - points[0].time));
    const t1 = state.now, t0 = t1 - span;
    const pw = W - M.left - M.right, ph = H - M.top - M.bottom;
    let max = 0;
    for (const p of points) for (const [name] of spec.series) max = Math.max(max, value(p, name) || 0);
    // pods: a whole number at the middle line too
    const top = spec.step ? Math.max(2, 2 * Math.ceil(max / 2)) : niceMax(max);
    const x = (t) => M.left + ((t - t0) / (t1 - t0)) * pw;
    const y = (v) => M.top + ph - (v / top) * ph;
    const root = svg("svg", {
      class: "chart",
      width: W,
      height: H,
      viewBox: `0 0 ${W} ${H}`,
      "data-chart": spec.id,
      "data-revision": key,
    });
    const title = svg("text", { class: "title", x: M.left, y: 13 });
    title.textContent = spec.title;
    root.append(title);
    // panic mode: shaded bands behind the lines
    let start = null;
    for (let i = 0; i < points.length; i++) {
      const p = points[i];
      if (p.panic && start === null) start = p.time;
      const end = !p.panic || i === points.length - 1;
      if (start !== null && end) {
        const stop = p.panic ? t1 : p.time;
        root.append(
          svg("rect", { class: "band", x: x(start), y: M.top, width: Math.max(1, x(stop) - x(start)), height: ph })
        );
        start = null;
      }
    }
    for (const frac of [0, 0.5, 1]) {
      const v = top * frac;
      root.append(svg("line", { class: "grid", x1: M.left, x2: W - M.right, y1: y(v), y2: y(v) }));
      const label = svg("text", { class: "axis", x: M.left - 4, y: y(v) + 3, "text-anchor": "end" });
      label.textContent = fmt(v);
      root.append(label);
    }
    const ago = (s) => (s >= 60 ? `-${+(s / 60).toFixed(1)}m` : `-${Math.round(s)}s`);
    for (const [frac, text] of [[0, ago(span)], [0.5, ago(span / 2)], [1, "now"]]) {
      const label = svg("text", {
        class: "axis",
        x: M.left + frac * pw,
        y: H - 6,
        "text-anchor": frac === 0 ? "start" : frac === 1 ? "end" : "middle",
      });
      label.textContent = text;
      root.append(label);
    }
    let legendX = M.left + 95;
    for (const [name, label] of spec.series) {
      const g = svg("g", { "data-series": name });
      const values = points.map((p) => value(p, name)).filter((v) => v !== null);
      const lastValue = values.length ? values[values.length - 1] : null;
      g.setAttribute("data-count", String(values.length));
      g.setAttribute("data-max", String(values.length ? Math.max(...values) : 0));
      g.setAttribute("data-last", String(lastValue === null ? "" : lastValue));
      let line = [];
      let prev = null;
      const flush = () => {
        if (line.length) g.append(svg("polyline", { class: `s-${name}`, points: line.join(" ") }));
        line = [];
      };
      for (const p of points) {
        const v = value(p, name);
        if (v === null || (prev && p.time - prev.time > GAP_SECONDS)) flush();
        if (v !== null) {
          if (spec.step && line.length) line.push(`${x(p.time).toFixed(1)},${y(value(prev, name)).toFixed(1)}`);
          line.push(`${x(p.time).toFixed(1)},${y(v).toFixed(1)}`);
        }
        prev = v === null ? null : p;
      }
      flush();
      root.append(g);
      root.append(svg("rect", { class: `k-${name}`, x: legendX, y: 5, width: 10, height: 3 }));
      const key = svg("text", { class: "axis", x: legendX + 13, y: 10 });
      key.textContent = `${label} ${fmt(lastValue)}`;
      root.append(key);
      legendX += 110;
    }
    return root;
  }

  poll();
})();
