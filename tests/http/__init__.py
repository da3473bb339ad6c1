"""HTTP API tests through a real server process."""
