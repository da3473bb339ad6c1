"""A self-signed certificate for TLS tests on loopback (the demo's helper, one copy)."""

from conveyor.demo.tls import self_signed

__all__ = ["self_signed"]
