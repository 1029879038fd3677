"""The README's example payloads are the script's output, and match the real pipeline."""

import configparser
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gen_examples.py"
README = ROOT / "README.md"

sys.path.insert(0, str(SCRIPT.parent))
import gen_examples  # noqa: E402


def test_readme_block_equals_the_script_output():
    printed = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True,
                             timeout=60, check=True).stdout
    readme = README.read_text()
    start = readme.index(gen_examples.BEGIN)
    end = readme.index(gen_examples.END) + len(gen_examples.END) + 1
    assert readme[start:end] == printed, \
        "README example payloads are stale: run python scripts/gen_examples.py --update"


def test_examples_are_one_call_in_order_and_valid_json():
    blocks = re.findall(r"`(channel_\w+)`:\n\n```json\n(.*?)\n```", README.read_text(), re.S)
    assert [name for name, _ in blocks] == ["channel_create", "channel_answer",
                                            "channel_bridge", "channel_destroy"]
    payloads = [json.loads(text) for _, text in blocks]
    assert len({p["call_id"] for p in payloads}) == 1
    assert [p["hook_event"] for p in payloads] == [name for name, _ in blocks]
    destroy = payloads[3]
    assert destroy["hangup_cause"] and destroy["hangup_code"].startswith("sip:")


def test_update_replaces_only_the_block(tmp_path):
    text = "# title\n\nbefore\n\n%s\nold\n%s\nafter\n" % (gen_examples.BEGIN, gen_examples.END)
    updated = gen_examples.replace_block(text, "NEW\n")
    assert updated == "# title\n\nbefore\n\nNEW\nafter\n"
    with pytest.raises(SystemExit, match="markers"):
        gen_examples.replace_block("no markers here", "NEW\n")


def test_systemd_unit_runs_as_a_user_restarts_and_keeps_state_in_var_lib():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(ROOT / "scripts" / "eslhook.service")
    service = unit["Service"]
    assert service["User"] not in ("", "root")
    assert service["Restart"] == "on-failure"
    assert service["StateDirectory"] == "eslhook"          # /var/lib/eslhook
    assert "--config /etc/eslhook/eslhook.yaml" in service["ExecStart"]
    assert "check-config" in service["ExecStartPre"]
    # the README's install steps put the files where the unit looks
    readme = README.read_text()
    assert "/etc/eslhook/eslhook.yaml" in readme and "/var/lib/eslhook" in readme
