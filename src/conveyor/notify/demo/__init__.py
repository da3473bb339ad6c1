"""`conveyor demo`: the million-message run against real protocol peers on loopback."""

from conveyor.notify.demo.run import DemoConfig, run_demo

__all__ = ["DemoConfig", "run_demo"]
