"""One worker process: load the App, run a Worker until SIGTERM/SIGINT, then drain."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
import sys

from conveyor.errors import InvalidInput
from conveyor.worker.app import App
from conveyor.worker.runner import Worker, WorkerOptions

log = logging.getLogger("conveyor.worker")


def load_app(spec: str) -> App:
    """The App named by `module:attribute` (the current directory is importable)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise InvalidInput(f"Name the app as module:attribute, e.g. myapp:app (not {spec!r}).")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name.partition(".")[0] and exc.name != module_name:
            raise  # the app's own import failed: its traceback is the useful part
        raise InvalidInput(f"No module named {module_name!r} here ({os.getcwd()}).") from None
    app = getattr(module, attribute, None)
    if not isinstance(app, App):
        raise InvalidInput(f"{spec} is not a conveyor App.")
    return app


async def serve(app: App, options: WorkerOptions) -> Worker:
    """Run a Worker in this process; SIGTERM or SIGINT stops it gracefully."""
    worker = Worker(app, options)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, worker.stop)
    log.info("worker %s: consuming %s", worker.holder, ", ".join(worker.queues()))
    try:
        await worker.run()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await app.aclose()
    log.info("worker %s: stopped after %d jobs (%d failed runs)", worker.holder,
             worker.processed, worker.failed)
    return worker


def run(spec: str, url: str | None, options: WorkerOptions) -> int:
    """Load `spec` (module:app), point it at `url` when given, and run until signalled."""
    app = load_app(spec)
    if url:
        app.url = url
    asyncio.run(serve(app, options))
    return 0
