"""The run loop: receive jobs in batches, run them, acknowledge, retry, dead-letter.

One `Worker` per process consumes every queue of its App (or those given). Per queue:
- receive in batches of up to `batch_size`, never holding more jobs than the queue's tasks'
  `concurrency` adds up to (prefetch is bounded by concurrency);
- a heartbeat extends the leases of held jobs every third of the lease (and renews global
  concurrency slots);
- successes are acknowledged in batches; failures go back through the broker's `retry` with
  exponential backoff and jitter (a delayed redelivery that keeps the id and receive count);
  a job out of retries is dead-lettered with its last error: through the broker's
  `max_receive_count` (the queue's DLQ `<queue>-dlq`, set by `App.ensure_queue`) when that
  matches the task's `max_retries`, else moved explicitly (copied to the DLQ, then deleted);
- on `stop()` (SIGTERM/SIGINT): no more receives; jobs not started yet are released at
  once; running jobs get `shutdown_grace` seconds to finish, then are cancelled and released
  (their leases end now, so another worker picks them up). None is lost.

Beside it: `failures` (retry, snooze, cancel, dead-letter), `outcomes` (status writes, and
the acknowledgements that wait for them), `held` (a held job), `options` (`WorkerOptions`),
`aio` (small asyncio helpers), `flows` (a flow job's results and end), `leases` (extending
held jobs' leases), `reach` (an unreachable source logged once per outage, not per call).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from conveyor.client._models import JobStatus
from conveyor.client.source import Source
from conveyor.heartbeats import Tally, TaskTally
from conveyor.models import Message, VisibilityEntry
from conveyor.reach import Backoff, Reach, outage, where
from conveyor.worker import flows
from conveyor.worker.aio import first, quietly, unless_stopped
from conveyor.worker.app import App
from conveyor.worker.batching import Batcher
from conveyor.worker.cancels import run_cancellable
from conveyor.worker.context import CURRENT, JobContext
from conveyor.worker.exceptions import Cancel, Retry, Snooze, TaskTimeout
from conveyor.worker.failures import Failures
from conveyor.worker.flows import FlowEnds
from conveyor.worker.heartbeat import Beater
from conveyor.worker.held import Held, on_lane
from conveyor.worker.keys import KeyGate, job_key
from conveyor.worker.lanes import Lanes
from conveyor.worker.leases import Leases
from conveyor.worker.options import SERVER_LONG_POLL, WorkerOptions
from conveyor.worker.rates import RateLimiter, Slots
from conveyor.worker.task import Received, Task, TaskOptions

__all__ = ["SERVER_LONG_POLL", "Worker", "WorkerOptions"]  # (the options live in options.py)

log = logging.getLogger("conveyor.worker")

# Seconds between receives that pass over full keys and find less than asked (keys.py).
SKIP_PAUSE = 0.1

_NO_RETRIES = TaskOptions(max_retries=0)


class Worker:
    """Runs an App's jobs until `stop()`."""

    def __init__(self, app: App, options: WorkerOptions | None = None, *,
                 source: Source | None = None) -> None:
        self.app = app
        self.options = options or WorkerOptions()
        self.holder = self.options.holder or f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._source = source
        self._stopping = asyncio.Event()
        self.processed = 0
        self.failed = 0
        self.tally = Tally()  # per-task counts for the heartbeat
        self.reach = Reach()  # whether the source answers (named once it is opened)

    def stop(self) -> None:
        """Stop receiving; finish or release what is held (safe to call from a signal)."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        """True once `stop()` was called."""
        return self._stopping.is_set()

    def queues(self) -> list[str]:
        """The queues this worker consumes."""
        if self.options.queues:
            return list(self.options.queues)
        return sorted({t.options.queue for t in self.app.tasks.values()})

    async def run(self) -> None:
        """Consume until stopped; returns after in-flight jobs are finished or released."""
        source = self._source or await self.app.source()
        self.reach.where = where(source, self.app.url)
        sync_slots = sum(t.options.concurrency for t in self.app.tasks.values()
                         if not t.is_async)
        executor = ThreadPoolExecutor(max_workers=max(4, sync_slots),
                                      thread_name_prefix="conveyor-job")
        statuses: Batcher[JobStatus] = Batcher(source.jobs.status_set_many, size=500,
                                               interval=0.1, name="job status", ordered=True,
                                               reach=self.reach)
        shared = _Shared(self, source, executor, statuses)
        runners = []
        for queue in self.queues():
            await self.app.ensure_queue(queue)
            runners.append(_QueueRunner(shared, queue))
        background: list[asyncio.Task[None]] = []
        if self.options.scheduler and self.app.crons:
            from conveyor.worker.cron import Scheduler

            scheduler = Scheduler(self.app, source, reach=self.reach)
            background.append(asyncio.create_task(scheduler.run(self._stopping)))
        beater = self._beater(source, runners)
        beating = asyncio.create_task(beater.run()) if beater else None
        if self.options.cancel_interval:
            from conveyor.worker.cancels import watch

            background.append(asyncio.create_task(watch(
                source, lambda: [r.held for r in runners], self.options.cancel_interval,
                self._stopping, self.reach)))
        try:
            await asyncio.gather(*(r.run() for r in runners), *background)
        finally:
            await statuses.drain()
            executor.shutdown(wait=False, cancel_futures=True)
            if beater is not None and beating is not None:
                beating.cancel()
                await asyncio.gather(beating, return_exceptions=True)
                await beater.remove()

    def _beater(self, source: Source, runners: list[_QueueRunner]) -> Beater | None:
        interval = self.options.heartbeat_interval
        if not interval:
            return None

        def load() -> tuple[int, int]:
            return (sum(r.capacity for r in runners),
                    sum(h.started for r in runners for h in list(r.held.values())))
        return Beater(self.app, source, self.holder, [r.queue for r in runners], self.tally,
                      load, interval=interval, ttl=self.options.heartbeat_ttl,
                      schedules=self.options.scheduler, reach=self.reach)


class _Shared:
    """What the queue runners of one worker share."""

    def __init__(self, worker: Worker, source: Source, executor: ThreadPoolExecutor,
                 statuses: Batcher[JobStatus]) -> None:
        self.worker = worker
        self.app = worker.app
        self.source = source
        self.executor = executor
        self.statuses = statuses
        self.reach = worker.reach
        self.limiter = RateLimiter(source.limits)
        self.slots = Slots(source.limits, worker.holder,
                           lease_seconds=max(5, worker.app.visibility_timeout * 2))
        self.task_gates = {name: asyncio.Semaphore(t.options.concurrency)
                           for name, t in worker.app.tasks.items()}
        wait = worker.options.wait_seconds
        self.wait_seconds = wait if wait is not None else (
            SERVER_LONG_POLL if _is_remote(source) else 1)


class _QueueRunner(Failures, Leases):
    """Receives, runs and settles the jobs of one queue."""

    def __init__(self, shared: _Shared, queue: str) -> None:
        self.s = shared
        self.queue = queue
        self.source = shared.source
        self.app = shared.app
        self.reach = shared.reach
        self.slots = shared.slots
        self.lease = shared.app.visibility_timeout
        tasks = [t for t in shared.app.tasks.values() if t.options.queue == queue]
        self.capacity = max(1, sum(t.options.concurrency for t in tasks))
        # A task's own limit can only bind when other tasks share the queue's capacity;
        # a gate that can never close would cost an acquire and a release per job.
        ungated = {t.name for t in tasks if t.options.concurrency >= self.capacity}
        self.gates: dict[str, asyncio.Semaphore | None] = {
            name: None if name in ungated else gate for name, gate in shared.task_gates.items()}
        self.held: dict[str, Held] = {}
        self.settling: dict[str, Held] = {}  # (outcomes.py)
        self.tallies: dict[str, TaskTally] = {}  # the worker's, by task (see _tally)
        self.began: dict[str, int] = {}  # tracked jobs running: their start (ms, wall)
        self.statuses = shared.statuses
        self.holder = shared.worker.holder
        # Per-key limited tasks: jobs parked for a key's slot do not count against the
        # capacity (up to as many again), each on a lane of its own.
        keyed = any(t.options.key_concurrency is not None for t in tasks)
        self.keys = KeyGate(shared.slots, self.capacity) if keyed else None
        self.lanes: Lanes[Held] = Lanes(self._handle, self.capacity * (2 if keyed else 1),
                                         started=on_lane)
        self._room = asyncio.Event()
        self._release: list[str] = []
        self.acks: Batcher[str] = Batcher(functools.partial(self.source.delete, queue),
                                          size=500, interval=0.02, name=f"acks {queue}",
                                          reach=self.reach)
        self.flow_ends = FlowEnds(self.source, self._ack_now, name=f"flow ends {queue}",
                                  lost=self._unsettle, reach=self.reach)

    async def run(self) -> None:
        beat = asyncio.create_task(self._heartbeat())
        try:
            await self._consume()
        finally:
            await self._shutdown()
            try:  # (the heartbeat keeps the settling jobs' leases meanwhile)
                await self.statuses.drain()  # (written statuses let acks and flow ends go)
                await self.flow_ends.drain()
                await self.acks.drain()
            finally:
                beat.cancel()
                await asyncio.gather(beat, return_exceptions=True)

    async def _consume(self) -> None:
        stopping = self.s.worker._stopping
        batch = self.s.worker.options.batch_size
        wait = self.s.wait_seconds
        reach = self.reach
        backoff = Backoff()
        failed = False  # the last receive failed
        while not stopping.is_set():
            keys = self.keys
            free = self.capacity - len(self.held) + (keys.parked if keys else 0)
            if free <= 0:
                self._room.clear()
                await first(self._room.wait(), stopping.wait())
                continue
            skip = keys.skip_groups() if keys else None
            asked = reach.now()
            try:
                if skip:
                    # No long poll (a key may open before anything arrives), and a pause
                    # after a short answer: each such receive walks past the skipped
                    # keys' backlog in the index.
                    want = min(free, batch)
                    assert keys is not None
                    keys.opened.clear()
                    messages = await self.source.receive(
                        self.queue, want, self.lease, 0, skip_groups=skip)
                    if len(messages) < want:
                        await first(asyncio.sleep(SKIP_PAUSE), keys.opened.wait(),
                                     stopping.wait())
                else:
                    # After a failure a short poll, which answers at once when the
                    # source is back (a long poll would sit on that news for its wait).
                    messages = await unless_stopped(self.source.receive(
                        self.queue, min(free, batch), self.lease, 0 if failed else wait),
                        stopping)
            except Exception as exc:
                failed = True
                if outage(exc):  # logged once per outage; tries back off up to 5 s
                    reach.error(exc, "receive from %s failed", self.queue)
                    pause = backoff.next()
                else:
                    log.exception("receive from %s failed; retrying in 1 s", self.queue)
                    pause = 1.0
                await first(asyncio.sleep(pause), stopping.wait())
                continue
            if failed:
                failed = False
                backoff.reset()
            reach.ok(asked)  # (ends an outage another loop saw first too)
            fresh = [Held(message) for message in messages]
            for held in fresh:
                self.held[held.message.receipt_handle] = held
            self.lanes.push(fresh)

    # one job ------------------------------------------------------------------------
    async def _handle(self, held: Held) -> None:
        message = held.message
        handle = message.receipt_handle
        try:
            try:
                job = Received.decode(message)
            except ValueError as exc:  # never a job: dead-letter it now
                await self._settle_failure(message, None, _NO_RETRIES, exc)
                return
            task = self.app.tasks.get(job.task)
            if task is None:  # perhaps a newer version's task: retry like the queue says
                retries = (self.app.max_receives(self.queue) or 4) - 1
                missing = LookupError(f"No task named {job.task!r} in this worker's app.")
                await self._settle_failure(message, job, TaskOptions(max_retries=retries),
                                           missing)
                return
            keys = self.keys if task.options.key_concurrency is not None else None
            group = None
            if keys is not None:
                group = await self._enter_key(job, task, keys)
                if group is None:
                    return
            try:
                # Inline, not a coroutine of its own: a plain job pays one lookup here.
                gate = self.gates.get(task.name)
                if gate is None:
                    await self._run_job(held, job, task)
                else:
                    async with gate:
                        await self._run_job(held, job, task)
            finally:
                if keys is not None and group is not None:
                    await quietly(keys.leave(task.name, group))
        except asyncio.CancelledError:
            # Shutdown: whatever was not settled goes back to the queue now.
            self._release.append(handle)
            raise
        finally:
            self.held.pop(handle, None)
            self._room.set()

    async def _enter_key(self, job: Received, task: Task[Any, Any], keys: KeyGate
                         ) -> str | None:
        """A per-key limited job's key once it holds a slot of it; None when the job was
        settled instead (its key function failed) or given back (its key is full)."""
        limit = task.options.key_concurrency
        assert limit is not None
        group = job.message.group_id or await self._key_of(job, task)
        if group is None:
            return None
        if not await keys.enter(task.name, group, limit, self._room):
            await self._give_back(job.message)
            return None
        return group

    async def _key_of(self, job: Received, task: Task[Any, Any]) -> str | None:
        """The key of a job sent without one (another producer): computed here; a key
        function that fails on the arguments fails the job."""
        assert task.options.concurrency_key is not None
        try:
            return job_key(task.options.concurrency_key, job.args, job.kwargs)
        except Exception as exc:
            await self._settle_failure(job.message, job, task.options, exc, task)
            return None

    async def _give_back(self, message: Message) -> None:
        """Back to the queue now, no attempt spent: its key is full here (keys.py)."""
        try:
            await self.source.retry(self.queue, message.receipt_handle, 0,
                                    message.last_error, snooze=True)
        except Exception as exc:
            self.reach.error(exc, "giving back %s failed; it comes back after its lease",
                             message.id)

    async def _run_job(self, held: Held, job: Received, task: Task[Any, Any]) -> None:
        options = task.options
        slot_key = f"concurrency:{task.name}" if options.global_concurrency else None
        if options.rate_limit is not None or options.rate_limit_key is not None:
            await self._take_tokens(job, task)
        if slot_key is not None:
            assert options.global_concurrency is not None
            await self.s.slots.acquire(slot_key, options.global_concurrency)
        held.started = True
        began = time.perf_counter()
        result: Any = None
        error: BaseException | None = None
        try:
            if held.cancelled:
                raise Cancel("Cancelled before it ran.")
            if job.flow is not None:
                job.args = await flows.with_results(self.source, job.flow, job.args)
            for middleware in self.app.middleware:
                await middleware.before_process(self.app, job)
            if options.track:
                self.began[job.id] = int(self.app.wall_time() * 1000)
                self._status(job, task, "running", ended=False)
                # Only tracked jobs can report progress or be cancelled while they run
                # (only they have a status to find them by): a plain job pays nothing here.
                held.context = JobContext(
                    job.id, job.task, self.queue, job.attempt, options.keep_result or 86400,
                    self.s.statuses.add, asyncio.get_running_loop(), threading.get_ident(),
                    started_at=self.began[job.id], worker=self.holder)
                token = CURRENT.set(held.context)
                try:
                    result = await self._call_cancellable(task, job, held)
                finally:
                    CURRENT.reset(token)
                    held.context = None
            else:
                result = await self._call(task, job)
        except (Exception, asyncio.CancelledError) as exc:
            error = exc
            if isinstance(exc, asyncio.CancelledError):
                raise
            tally = self._tally(task.name)
            tally.ran(time.perf_counter() - began)
            tally.failures += not isinstance(exc, (Retry, Cancel, Snooze))
            await self._settle_failure(job.message, job, options, exc, task)
        else:
            (self.tallies.get(task.name) or self._tally(task.name)).ran(
                time.perf_counter() - began)
            self.s.worker.processed += 1
            if options.track:
                keep = options.keep_result
                self._keep_leased(job)
                self._status(job, task, "succeeded", result=result if keep else None,
                             then=functools.partial(self._settle, job, result))
            else:
                self._settle(job, result, True)
            if job.unique is not None:
                await self._release_unique(job, options, "succeeded")
        finally:
            if options.track:  # cancelled at shutdown: no end was reported
                self.began.pop(job.id, None)
            if slot_key is not None:
                await quietly(self.s.slots.release(slot_key))
            for middleware in reversed(self.app.middleware):
                await quietly(middleware.after_process(
                    self.app, job, result,
                    None if isinstance(error, (Retry, Cancel, Snooze)) else error))

    def _count_failure(self) -> None:
        self.s.worker.failed += 1

    def _tally(self, name: str) -> TaskTally:
        """A task's counts on this queue, kept here: a job adds to them without a lookup
        by (queue, task)."""
        found = self.tallies.get(name)
        if found is None:
            found = self.tallies[name] = self.s.worker.tally.of(self.queue, name)
        return found

    async def _take_tokens(self, job: Received, task: Task[Any, Any]) -> None:
        options = task.options
        if options.rate_limit is not None:
            await self.s.limiter.take(f"rate:{task.name}", options.rate_limit)
        if options.rate_limit_key is not None and options.key_rate_limit is not None:
            key = options.rate_limit_key(*job.args, **job.kwargs)
            await self.s.limiter.take(f"rate:{task.name}:{key}", options.key_rate_limit)

    async def _call(self, task: Task[Any, Any], job: Received) -> Any:
        timeout = task.options.timeout
        if task.is_async:
            running = task.fn(*job.args, **job.kwargs)
        else:
            call = functools.partial(contextvars.copy_context().run, task.fn, *job.args,
                                     **job.kwargs)
            running = asyncio.get_running_loop().run_in_executor(self.s.executor, call)
        if timeout is None:
            return await running
        try:
            return await asyncio.wait_for(running, timeout)
        except TimeoutError:
            raise TaskTimeout(f"The task ran longer than {timeout:g} s.") from None

    async def _call_cancellable(self, task: Task[Any, Any], job: Received, held: Held
                                ) -> Any:
        """`_call` for a tracked job: an async one in a scope `held.cancel()` can end."""
        if not task.is_async:
            return await self._call(task, job)
        return await run_cancellable(task.fn(*job.args, **job.kwargs), task.options.timeout,
                                     held)

    async def _shutdown(self) -> None:
        for held in self.lanes.take_pending():  # never started: back to the queue now
            handle = held.message.receipt_handle
            self.held.pop(handle, None)
            self._release.append(handle)
        waiting = {h.task for h in self.held.values() if not h.started and h.task}
        for lane in waiting:  # held up by a limit: cancelled, so released
            lane.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
        grace = self.s.worker.options.shutdown_grace
        if self.held:
            log.info("%s: waiting up to %g s for %d running jobs", self.queue, grace,
                     len(self.held))
        deadline = time.monotonic() + grace
        while self.held and time.monotonic() < deadline:
            self._room.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room.wait(), deadline - time.monotonic())
        late = {h.task for h in self.held.values() if h.task}
        for lane in late:
            lane.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        await self.lanes.close()
        if self._release:
            handles, self._release = self._release, []
            for start in range(0, len(handles), 1000):
                await quietly(self.source.change_visibility(
                    self.queue, [VisibilityEntry(h, 0) for h in handles[start:start + 1000]]))


def _is_remote(source: Source) -> bool:
    from conveyor.client.async_client import AsyncClient

    return isinstance(source, AsyncClient)
