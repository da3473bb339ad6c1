"""The README stays true: its in-process example runs, and CI runs its test command."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent.parent
README = (ROOT / "README.md").read_text()


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.M | re.S)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


async def test_in_process_example_runs(tmp_path: Path) -> None:
    [code] = re.findall(r"```python\n(.*?)```", _section("In-process"), re.S)
    script = tmp_path / "example.py"
    script.write_text(code)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert out.decode() == "reminding ada@example.com\n"
    assert (tmp_path / "inprocess-example.db").exists()  # relative to the working directory


def test_ci_runs_the_readme_test_command() -> None:
    [command] = re.findall(r"```\n(.*?)\n```", _section("Test it"), re.S)
    ci = (ROOT / ".ci" / "run").read_text()
    lines = [line.strip() for line in ci.splitlines() if not line.lstrip().startswith("#")]
    assert command in lines or f"bash {command}" in lines, (command, lines)
