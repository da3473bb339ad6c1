/* conveyor dashboard: live queues table, per-queue charts, the workers page, confirmations.
   Everything shown is set with textContent (never innerHTML): names and bodies are user input. */
(function () {
  "use strict";

  var COLUMNS = ["name", "visible", "in_flight", "delayed", "dead_letters", "oldest",
                 "send_rate", "receive_rate", "paused"];
  var MAX_POINTS = 900;

  function age(s) {
    if (s === null || s === undefined) return "\u2013";
    s = Math.floor(s);
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + String(s % 60).padStart(2, "0") + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h " + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + "m";
    return Math.floor(s / 86400) + "d " + Math.floor(s % 86400 / 3600) + "h";
  }

  function rate(r) {
    if (!r) return "0";
    return r < 100 ? r.toFixed(1) : Math.round(r).toLocaleString("en");
  }

  function setText(el, text) {
    if (el && el.textContent !== text) el.textContent = text;
  }

  function live(state) {
    var el = document.getElementById("live");
    if (!el) return;
    el.className = "live " + (state === "live" ? "on" : state);
    setText(document.getElementById("live-text"), state);
  }

  function listen(url, event, handler) {
    if (!window.EventSource) return;
    var source = new EventSource(url);
    source.addEventListener(event, function (e) {
      live("live");
      handler(JSON.parse(e.data));
    });
    source.onerror = function () { live("reconnecting"); };
    source.onopen = function () { live("live"); };
  }

  // forms that ask first ------------------------------------------------------------
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (e) {
      if (!window.confirm(form.getAttribute("data-confirm"))) e.preventDefault();
    });
  });

  // workers page: the page itself again every few seconds, swapped in place -----------
  var workers = document.getElementById("workers-page");
  if (workers) {
    var every = Number(workers.dataset.refresh) * 1000 || 5000;
    var refresh = function () {
      fetch(location.pathname, {credentials: "same-origin"})
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
        .then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html")
            .getElementById("workers-page");
          if (fresh) document.getElementById("workers-page").replaceWith(fresh);
          live("live");
        })
        .catch(function () { live("reconnecting"); })
        .then(function () { setTimeout(refresh, every); });
    };
    live("live");
    setTimeout(refresh, every);
  }

  // front page: the queues table --------------------------------------------------------
  var table = document.getElementById("queues");
  if (table) {
    var body = table.tBodies[0];
    var filter = document.getElementById("filter");
    var rows = {};
    Array.prototype.forEach.call(body.rows, function (tr) { rows[tr.dataset.name] = tr; });

    var applyFilter = function () {
      var text = filter.value.trim().toLowerCase();
      Object.keys(rows).forEach(function (name) {
        rows[name].hidden = text !== "" && name.toLowerCase().indexOf(text) < 0;
      });
    };
    filter.addEventListener("input", applyFilter);

    var newRow = function (name) {
      var tr = document.createElement("tr");
      tr.dataset.name = name;
      var td = document.createElement("td");
      td.className = "name";
      var a = document.createElement("a");
      a.href = "/ui/queues/" + encodeURIComponent(name);
      a.textContent = name;
      td.appendChild(a);
      tr.appendChild(td);
      ["visible", "in_flight", "delayed", "dead_letters", "oldest", "send_rate", "receive_rate"]
        .forEach(function (col) {
          var cell = document.createElement("td");
          cell.className = "n";
          cell.dataset.col = col;
          tr.appendChild(cell);
        });
      return tr;
    };

    var update = function (tr, r) {
      var v = {};
      COLUMNS.forEach(function (c, i) { v[c] = r[i]; });
      tr.querySelectorAll("td[data-col]").forEach(function (cell) {
        var col = cell.dataset.col;
        var text = col === "oldest" ? age(v.oldest)
          : (col === "send_rate" || col === "receive_rate") ? rate(v[col]) : String(v[col]);
        setText(cell, text);
      });
      var name = tr.querySelector("td.name");
      var tag = name.querySelector(".tag");
      if (v.paused && !tag) {
        tag = document.createElement("span");
        tag.className = "tag";
        tag.textContent = "paused";
        name.appendChild(document.createTextNode(" "));
        name.appendChild(tag);
      } else if (!v.paused && tag) {
        tag.remove();
      }
      tr.classList.toggle("paused", !!v.paused);
    };

    // The same page as the table: a name prefix and where the page starts.
    var page = new URLSearchParams(location.search);
    var query = new URLSearchParams();
    ["prefix", "after"].forEach(function (k) { if (page.get(k)) { query.set(k, page.get(k)); } });
    listen("/ui/events" + (query.toString() ? "?" + query.toString() : ""), "queues",
           function (data) {
      var seen = {};
      var previous = null;
      data.rows.forEach(function (r) {  // rows come sorted by name
        var name = r[0];
        seen[name] = true;
        var tr = rows[name];
        if (!tr) {
          tr = rows[name] = newRow(name);
          body.insertBefore(tr, previous ? previous.nextSibling : body.firstChild);
        }
        update(tr, r);
        previous = tr;
      });
      Object.keys(rows).forEach(function (name) {
        if (!seen[name]) { rows[name].remove(); delete rows[name]; }
      });
      setText(document.getElementById("queue-count"), String(data.total));
      document.getElementById("empty").hidden = data.matching > 0;
      applyFilter();
    });
  }

  // queue page: counts and charts -----------------------------------------------------
  var heading = document.getElementById("queue-name");
  if (heading) {
    var queue = heading.dataset.queue;
    var charts = [];
    var series = {
      depth: [["visible", "Visible", "#2563eb"], ["in_flight", "In flight", "#d97706"],
              ["delayed", "Delayed", "#7c3aed"], ["dead_letters", "Dead letters", "#dc2626"]],
      rates: [["send_rate", "Sent/s", "#059669"], ["receive_rate", "Received/s", "#2563eb"]],
      age: [["oldest_age_seconds", "Oldest (s)", "#d97706"]]
    };
    var label = function (p) { return new Date(p.at * 1000).toLocaleTimeString(); };

    var makeChart = function (id, lines, points) {
      var canvas = document.getElementById(id);
      if (!canvas || !window.Chart) return;
      var chart = new window.Chart(canvas, {
        type: "line",
        data: {
          labels: points.map(label),
          datasets: lines.map(function (l) {
            return {label: l[1], borderColor: l[2], backgroundColor: l[2], borderWidth: 2,
                    pointRadius: 0, tension: 0.2, data: points.map(function (p) { return p[l[0]] || 0; })};
          })
        },
        options: {animation: false, responsive: true, maintainAspectRatio: false,
                  scales: {y: {beginAtZero: true}, x: {ticks: {maxTicksLimit: 6}}},
                  plugins: {legend: {labels: {boxWidth: 12}}}}
      });
      charts.push([chart, lines]);
    };

    var addPoint = function (p) {
      charts.forEach(function (pair) {
        var chart = pair[0];
        chart.data.labels.push(label(p));
        pair[1].forEach(function (l, i) { chart.data.datasets[i].data.push(p[l[0]] || 0); });
        if (chart.data.labels.length > MAX_POINTS) {
          chart.data.labels.shift();
          chart.data.datasets.forEach(function (d) { d.data.shift(); });
        }
        chart.update("none");
      });
      var stats = {visible: String(p.visible), in_flight: String(p.in_flight),
                   delayed: String(p.delayed), dead_letters: String(p.dead_letters),
                   oldest: age(p.oldest_age_seconds), send_rate: rate(p.send_rate),
                   receive_rate: rate(p.receive_rate)};
      document.querySelectorAll("[data-stat]").forEach(function (el) {
        setText(el, stats[el.dataset.stat]);
      });
    };

    fetch("/ui/queues/" + encodeURIComponent(queue) + "/series")
      .then(function (r) { return r.json(); })
      .then(function (data) {
        var last = data.points.length ? data.points[data.points.length - 1].at : 0;
        makeChart("chart-depth", series.depth, data.points);
        makeChart("chart-rates", series.rates, data.points);
        makeChart("chart-age", series.age, data.points);
        listen("/ui/events?queue=" + encodeURIComponent(queue), "point", function (e) {
          if (e.point && e.point.at > last) { last = e.point.at; addPoint(e.point); }
        });
      });
  }
  // deliveries page: notifications entering each state per bucket ---------------------
  var deliveries = document.getElementById("chart-deliveries");
  if (deliveries && window.Chart) {
    var COLORS = {queued: "#2563eb", held: "#7c3aed", digested: "#0891b2", sent: "#059669",
                  retrying: "#d97706", failed: "#dc2626", unknown: "#6b7280",
                  skipped: "#a3a3a3", suppressed: "#be185d"};
    var params = new URLSearchParams({bucket: deliveries.dataset.bucket,
                                      minutes: deliveries.dataset.minutes});
    if (deliveries.dataset.channel) params.set("channel", deliveries.dataset.channel);
    var deliveryChart = null;
    var draw = function (data) {
      var sums = {};  // status -> counts per bucket, over the channels shown
      Object.keys(data.counts).forEach(function (ch) {
        Object.keys(data.counts[ch]).forEach(function (status) {
          var row = sums[status] || (sums[status] = data.at.map(function () { return 0; }));
          data.counts[ch][status].forEach(function (n, i) { row[i] += n; });
        });
      });
      var labels = data.at.map(function (t) { return new Date(t).toLocaleTimeString(); });
      var datasets = Object.keys(sums).map(function (status) {
        var color = COLORS[status] || "#111827";
        return {label: status, data: sums[status], backgroundColor: color,
                borderColor: color, stack: "all"};
      });
      if (deliveryChart) {
        deliveryChart.data.labels = labels;
        deliveryChart.data.datasets = datasets;
        deliveryChart.update("none");
        return;
      }
      deliveryChart = new window.Chart(deliveries, {
        type: "bar", data: {labels: labels, datasets: datasets},
        options: {animation: false, responsive: true, maintainAspectRatio: false,
                  scales: {x: {stacked: true, ticks: {maxTicksLimit: 8}},
                           y: {stacked: true, beginAtZero: true}},
                  plugins: {legend: {labels: {boxWidth: 12}}}}
      });
      deliveries.dataset.drawn = String(datasets.length);
    };
    var load = function () {
      fetch("/v1/notifications/series?" + params.toString(), {credentials: "same-origin"})
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
        .then(function (data) { draw(data); live("live"); })
        .catch(function () { live("reconnecting"); })
        .then(function () { setTimeout(load, Math.max(10, Number(params.get("bucket")) / 6) * 1000); });
    };
    load();
  }
})();
