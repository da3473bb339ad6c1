"""End-to-end tests of the `conveyor` command, run as a subprocess."""
