"""The WQ API as examples/wonderq/README.md shows it: its curl lines, run with curl against
a real `conveyor serve`, answer what the comment under each says."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.http.server import start_server

README = Path(__file__).resolve().parents[2] / "examples" / "wonderq" / "README.md"
DOCUMENTED = "http://127.0.0.1:8600"


def examples() -> list[tuple[str, str]]:
    """(curl line, expected answer) pairs from the README's WQ section."""
    text = README.read_text().split("## The WQ API", 1)[1]
    block = re.search(r"```sh\n(.*?)```", text, re.DOTALL)
    assert block is not None
    lines = block.group(1).splitlines()
    return [(line, lines[i + 1].removeprefix("# ")) for i, line in enumerate(lines)
            if line.startswith("curl ")]


def curl(line: str, base: str, message_id: str) -> tuple[int, str]:
    args = shlex.split(line.replace(DOCUMENTED, base).replace("<id>", message_id))
    done = subprocess.run([*args, "-w", "\n%{http_code}"], capture_output=True, text=True,
                          timeout=20, check=True)
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_the_readme_curl_examples(tmp_path: Path) -> None:
    pairs = examples()
    assert len(pairs) == 5
    server = start_server(tmp_path, ["--database", f"sqlite:///{tmp_path}/c.db", "--no-sqs"])
    try:
        message_id = ""
        for line, expected in pairs:
            status, body = curl(line, server.url, message_id)
            want_status, _, want_body = expected.partition(" ")
            assert status == int(want_status), (line, body)
            if want_body.startswith("{"):
                got = json.loads(body)
                if not message_id:
                    message_id = got["messageID"]
                assert got == json.loads(want_body.replace("<id>", message_id)), line
        # The lock lasts 1,000 ms: past it, PATCH is 404 and the message is back.
        post, get, patch = pairs[0][0], pairs[1][0], pairs[2][0]
        second = json.loads(curl(post, server.url, "")[1])["messageID"]
        [locked] = json.loads(curl(get, server.url, "")[1])["messages"]
        assert locked["id"] == second
        time.sleep(1.2)
        assert curl(patch, server.url, second)[0] == 404
        [again] = json.loads(curl(get, server.url, "")[1])["messages"]
        assert again["id"] == second
        assert curl(patch, server.url, second)[0] == 204
    finally:
        assert server.stop() == 0
