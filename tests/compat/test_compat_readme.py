"""The README's "Test your own ESL client" examples work as written: the
fake-switch command it shows (on a free port instead of 8021), then each
example as a user would run it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from compat_support import MAX_SECONDS, ROOT, recorded_hangups, require_node

README = ROOT / "README.md"


def section() -> str:
    text = README.read_text()
    start = text.index("## Test your own ESL client")
    return text[start:text.index("\n## ", start + 1)]


def block(language: str) -> str:
    return re.search(r"```%s\n(.*?)```" % language, section(), re.S).group(1)


@pytest.fixture
def fake_switch_port():
    """The README's fake-switch command, on a free port."""
    command = block("sh").strip().split()
    assert command[:2] == [".venv/bin/eslhook", "fake-switch"]
    args = [a if a != "127.0.0.1:8021" else "127.0.0.1:0" for a in command[2:]]
    process = subprocess.Popen([sys.executable, "-m", "eslhook", "fake-switch", *args],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True)
    try:
        banner = process.stdout.readline()
        found = re.search(r"listening on 127\.0\.0\.1:(\d+)", banner)
        assert found, "fake-switch said %r" % banner
        yield found.group(1)
    finally:
        process.terminate()
        process.wait(10)


def expected_lines() -> set[str]:
    return {"%s %s" % (u, "NORMAL_CLEARING") for u, h in recorded_hangups().items()
            if h["Call-Direction"] == "inbound"}


def run_example(argv: list[str], env=None) -> set[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=MAX_SECONDS, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(done.stdout.split("\n")) - {""}


def test_readme_python_example_prints_the_inbound_hangups(fake_switch_port, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(block("python").replace("port=8021", "port=" + fake_switch_port))
    assert run_example([sys.executable, str(script)]) == expected_lines()


def test_readme_node_example_prints_the_inbound_hangups(fake_switch_port, tmp_path):
    node = require_node()
    script = tmp_path / "example.js"
    script.write_text(block("js").replace("8021", fake_switch_port))
    env = {**os.environ, "NODE_PATH": str(ROOT / "tests" / "compat" / "node" / "node_modules")}
    assert run_example([node, str(script)], env=env) == expected_lines()
