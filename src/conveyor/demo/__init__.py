"""`conveyor demo`: the million-message run against real protocol peers on loopback; not
part of the library (`conveyor.notify`), which it drives from outside."""

from conveyor.demo.run import DemoConfig, run_demo

__all__ = ["DemoConfig", "run_demo"]
