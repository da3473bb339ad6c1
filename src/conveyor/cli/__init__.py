"""The `conveyor` command line (argparse): parsing and wiring, no business logic."""
