"""The demo's closing report: rates, latency, CPU, cost, the sinks' exactly-once check and
the bottleneck."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from conveyor.demo.crashes import Crashes

LABELS = {"email": "email", "push": "web push", "fcm": "FCM", "apns": "APNs"}


@dataclass
class Report:
    """What a demo run measured (times in seconds, CPU in CPU-seconds; `counts`:
    notifications by channel)."""

    messages: int
    counts: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    failed: int = 0
    workers: int = 0
    groups: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)
    """How many of the `workers` processes delivered which channels."""
    database: str = ""
    enqueue_seconds: float = 0.0
    deliver_seconds: float = 0.0
    wall_seconds: float = 0.0
    latencies: list[int] = field(default_factory=list)
    worker_cpu: float = 0.0
    render_cpu: float = 0.0
    broker_cpu: float = 0.0
    producer_cpu: float = 0.0
    peer_cpu: dict[str, float] = field(default_factory=dict)
    """CPU-seconds of each channel's sink process, and `"sink"`: all of them."""
    waits: dict[str, float] = field(default_factory=dict)
    enqueue_waits: dict[str, float] = field(default_factory=dict)
    cost_per_hour: float = 0.05
    sinks: dict[str, str | None] = field(default_factory=dict)
    pipelined: bool = False
    ledger: dict[str, dict[str, int]] = field(default_factory=dict)
    checks: dict[str, dict[str, int]] = field(default_factory=dict)
    ok: bool = False
    server_cpu: float = 0.0
    """CPU-seconds of the PostgreSQL backends that served the run (0: SQLite, or a server
    on another machine)."""
    server_waited: float = 0.0
    run_queue: float = 0.0
    """Seconds the demo's own processes (producer, workers, peers) were runnable but
    waiting for a core; `server_waited`: the same for the backends."""
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)
    write_lock: dict[str, dict[str, float]] = field(default_factory=dict)
    """SQLite's write lock by process ("producer", "workers"): transactions, seconds waited
    for it and held (empty on PostgreSQL)."""
    crashes: Crashes | None = None
    """The kills of a `--kill-workers-every` run (None: no kills)."""

    def check(self, results: dict[str, tuple[set[str], dict[str, Any]]]) -> None:
        """Exactly once, right content: compare what each channel's sink saw (`received`
        per recipient, `bad` content, `verified`: how many it checked) with what was sent
        to it."""
        for channel, (expected, seen) in results.items():
            got: Counter[str] = Counter(seen["received"])
            self.checks[channel] = {
                "received": sum(got.values()), "distinct": len(got),
                "missing": len(expected - set(got)),
                "duplicated": sum(1 for v in got.values() if v > 1),
                "unexpected": len(set(got) - expected), "bad_content": int(seen["bad"]),
                "checked": int(seen.get("verified", sum(got.values())))}
        # Without kills: exactly once. With kills: none lost, and extra copies per channel
        # within kills x in_flight.
        allowed = self.crashes.bound if self.crashes else 0
        if self.crashes:
            self.crashes.extra = {n: c["received"] - c["distinct"]
                                  for n, c in self.checks.items()}
        self.ok = bool(self.checks) and all(
            c["missing"] == 0 and c["received"] - c["distinct"] <= allowed and
            c["unexpected"] == 0 and c["bad_content"] == 0
            for c in self.checks.values()) and self.failed == 0

    def percentile(self, p: float) -> float:
        """Enqueue-to-delivery latency percentile in seconds."""
        if not self.latencies:
            return 0.0
        k = min(len(self.latencies) - 1, int(p / 100 * len(self.latencies)))
        return self.latencies[k] / 1000

    def shares(self) -> dict[str, float]:
        """CPU by part as a share of the machine (cores x wall)."""
        import os

        capacity = (os.cpu_count() or 1) * max(self.wall_seconds, 1e-9)
        worker_rest = max(0.0, self.worker_cpu - self.render_cpu - self.broker_cpu)
        return {"broker": self.broker_cpu / capacity,
                "worker": worker_rest / capacity,
                "channel": self.render_cpu / capacity,
                "sink": self.peer_cpu.get("sink", 0.0) / capacity,
                "producer": self.producer_cpu / capacity,
                **({"database server": self.server_cpu / capacity}
                   if self.server_cpu else {})}

    def total_cpu(self) -> float:
        """CPU-seconds of every process of the run, the local database server's included."""
        return (self.worker_cpu + self.producer_cpu + self.peer_cpu.get("sink", 0.0)
                + self.server_cpu)

    def starved(self) -> bool:
        """Whether the machine's other load, not the run, set the pace: the run's
        processes waited longer for a core than they ran, and still kept less than 85% of
        the cores busy (a run that fills the cores also waits, for its own processes)."""
        import os

        cores = os.cpu_count() or 1
        busy = self.total_cpu() / max(self.wall_seconds, 1e-9)
        return self.run_queue + self.server_waited > self.total_cpu() > 0 and \
            busy < 0.85 * cores


# Which part of the system a lane waits on in each stage.
_STAGE_PART = {"idle": "producer", "receive": "broker", "ledger": "broker", "ack": "broker",
               "render": "channel", "rate": "rate limit", "send": "sink"}


def wait_shares(r: Report) -> dict[str, dict[str, float]]:
    """Each channel's delivery-lane time by stage, as shares of that channel's lane time
    (stats keys are `"channel:stage"`)."""
    by_channel: dict[str, dict[str, float]] = {}
    for key, seconds in r.waits.items():
        channel, _, stage = key.rpartition(":")
        by_channel.setdefault(channel or "all", {})[stage] = seconds
    out: dict[str, dict[str, float]] = {}
    for channel, stages in sorted(by_channel.items()):
        total = sum(stages.values()) or 1e-9
        out[channel] = {k: v / total for k, v in sorted(stages.items(), key=lambda kv: -kv[1])}
    return out


def bottleneck(r: Report) -> str:
    """The part that limited the run: the CPU when the machine was nearly saturated,
    else where the delivery lanes waited longest (a lane waiting on `idle` waits for the
    producer)."""
    import os

    shares = r.shares()
    cores = os.cpu_count() or 1
    busy = r.total_cpu() / max(r.wall_seconds, 1e-9)
    by_part = _parts(r)
    busiest = max(shares, key=lambda k: shares[k])
    if r.starved():
        return (f"CPU, shared with other load: the run's processes waited "
                f"{r.run_queue + r.server_waited:,.0f} s for a core and ran "
                f"{r.total_cpu():,.0f} s ({busy:.2f} of {cores} cores busy; load average "
                f"{r.load[0]:.1f}); the lanes' waits below are mostly that")
    if busy >= 0.85 * cores or not by_part:
        return (f"CPU: {busy:.2f} of {cores} cores busy; busiest {busiest} "
                f"({shares[busiest]:.0%} of the machine)")
    part = max(by_part, key=lambda k: by_part[k])
    return (f"{part}: the delivery lanes spent {by_part[part]:.0%} of their time on it; "
            f"CPU not the limit ({busy:.2f} of {cores} cores busy; busiest {busiest} "
            f"{shares[busiest]:.0%})")


def _parts(r: Report) -> dict[str, float]:
    """All lanes' time by the part they waited on (a channel's send: its sink)."""
    total = sum(r.waits.values()) or 1e-9
    parts: dict[str, float] = {}
    for key, seconds in r.waits.items():
        channel, _, stage = key.rpartition(":")
        part = _STAGE_PART.get(stage, stage)
        if part == "sink":  # the send stage: the client's transport and the peer
            part = f"{channel} send (client transport + sink)"
        parts[part] = parts.get(part, 0.0) + seconds / total
    return parts


def _sink_cpu_lines(r: Report) -> list[str]:
    """Each sink's CPU per message it received: the test setup's overhead (a real
    provider's CPU is not on this machine), beside the workers' per message sent."""
    parts = []
    for c in r.counts:
        if c in r.peer_cpu:
            n = r.checks.get(c, {}).get("received", 0) or r.counts[c]
            parts.append(f"{LABELS.get(c, c)} {r.peer_cpu[c]:,.1f} s = "
                         f"{r.peer_cpu[c] / max(n, 1) * 1e6:,.0f} us/msg")
    if not parts:
        return []
    return [f"  {'sink CPU':<17} " + ", ".join(parts),
            f"                    (workers: {r.worker_cpu / max(r.sent, 1) * 1e6:,.0f} us/msg "
            "sent; the sinks stand in for providers whose CPU would not be on this machine)"]


def render_report(r: Report) -> str:
    """The report as text."""
    shares = r.shares()
    total_cpu = r.total_cpu()
    cost = r.wall_seconds / 3600 * r.cost_per_hour
    rate = r.sent / r.deliver_seconds if r.deliver_seconds else 0.0
    lines = [
        "",
        "conveyor demo — report",
        f"  notifications     {r.messages:,} (" + ", ".join(
            f"{n:,} {LABELS.get(c, c)}" for c, n in r.counts.items()) + ")",
        f"  database          {r.database}; {r.workers} delivery worker processes"
        + (" (" + "; ".join(f"{n} for " + ", ".join(LABELS.get(c, c) for c in g)
                            for n, g in r.groups) + ")" if len(r.groups) > 1 else ""),
        *[f"  {'sinks' if k == 0 else '':<17} {c}: {name}"
          for k, (c, name) in enumerate(r.sinks.items())],
        f"  SMTP client       {'RFC 2920 pipelined' if r.pipelined else 'aiosmtplib pool'}",
        f"  wall time         {r.wall_seconds:,.1f} s (all delivered at "
        f"{r.deliver_seconds:,.1f} s)",
        f"  enqueue           {r.messages:,} in {r.enqueue_seconds:,.1f} s = "
        f"{r.messages / max(r.enqueue_seconds, 1e-9):,.0f} msg/s",
        f"  delivery          {r.sent:,} sent, {r.failed:,} failed = {rate:,.0f} msg/s "
        "(enqueue overlapping)",
        f"  latency           enqueue to delivery p50 {r.percentile(50):.2f} s, "
        f"p90 {r.percentile(90):.2f} s, p99 {r.percentile(99):.2f} s, "
        f"max {r.percentile(100):.2f} s",
        f"  CPU               {total_cpu:,.1f} CPU-s in all "
        f"({total_cpu / max(r.wall_seconds, 1e-9):.2f} cores busy on average)",
        "                    " + ", ".join(f"{k} {v:.0%}" for k, v in shares.items()),
        "                    (broker: " + ("SQLite threads of the workers" if
                                        r.database.startswith("SQLite") else
                                        "in the database server" if r.server_cpu else
                                        "the database server's CPU is not counted") +
        "; channel: rendering and encryption;",
        "                     worker: the rest of the workers' event loops incl. transport; "
        "producer: enqueue)",
        *_sink_cpu_lines(r),
        f"  waiting for CPU   {r.run_queue + r.server_waited:,.1f} s runnable but not "
        f"running (run queues; {r.server_waited:,.1f} s of it the database server's); "
        f"load average {r.load[0]:.1f} {r.load[1]:.1f} {r.load[2]:.1f}",
        *[f"  {'lanes (' + ch + ')':<17} " + ", ".join(f"{k} {v:.0%}" for k, v in st.items())
          for ch, st in wait_shares(r).items()],
        "                    (idle: empty receives, waiting for the producer; ledger: "
        "begin/finish; ack: deletes)",
        "  enqueue time      " + (", ".join(f"{k} {v:,.1f} s" for k, v in
                                         r.enqueue_waits.items()) or "-"),
        *[f"  {'write lock' if k == 0 else '':<17} {who}: held {w['held']:,.1f} s "
          f"({w['on_cpu']:,.1f} s of it on a CPU), waited {w['waited']:,.1f} s "
          f"over {w['transactions']:,.0f} transactions"
          for k, (who, w) in enumerate(r.write_lock.items()) if w.get("transactions")],
        f"  bottleneck        {bottleneck(r)}",
        f"  cost              {cost * 100:.4f} cents at ${r.cost_per_hour}/hour "
        f"(${cost / max(r.messages, 1) * 1e6:.4f} per million)",
    ]
    for name, c in r.checks.items():
        lines.append(
            f"  {name + ' sink':<17} {c['received']:,} received, {c['distinct']:,} distinct,"
            f" {c['missing']} missing, {c['duplicated']} duplicated, {c['unexpected']} "
            f"unexpected; content checked on {c['checked']:,}, {c['bad_content']} wrong")
    lines.append(f"  ledger            {r.ledger}")
    if r.crashes:
        lines.append(f"  crashes           {r.crashes.line()}")
        lines.append("                    (CPU, latency and lane shares above cover only the "
                     "workers alive at the end)")
    allowed = r.crashes.bound if r.crashes else 0
    wrong = [f"{LABELS.get(n, n)} ({c['missing']} missing, {c['duplicated']} duplicated, "
             f"{c['unexpected']} unexpected, {c['bad_content']} wrong)"
             for n, c in r.checks.items() if c["missing"] or c["unexpected"] or
             c["bad_content"] or c["received"] - c["distinct"] > allowed]
    on = ", on " + ", ".join(LABELS.get(c, c) for c in r.checks)
    verdict = ("FAIL: " + "; ".join(wrong + ([f"{r.failed:,} failed"] if r.failed else []))
               if not r.ok else
               "PASS: every notification arrived exactly once with the right content" + on
               if not r.crashes else
               "PASS: none lost, right content, extra copies within the bound" + on)
    lines.append(f"  check             {verdict}")
    return "\n".join(lines)
