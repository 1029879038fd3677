"""hooks.yaml holds signing secrets: eslhook writes it 0600 whatever the umask,
and check-config warns about one others may read."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from test_api_support import PARENT, start_api

ROOT = Path(__file__).resolve().parent.parent
SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="   # 26 bytes, base64


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022():
    before = os.umask(0o022)
    yield
    os.umask(before)


def test_hooks_yaml_is_written_0600_under_umask_022(tmp_path, umask_022):
    api = start_api(tmp_path)           # creates the file
    try:
        assert mode(api.path) == 0o600
        api.create(secret="generate")
        assert mode(api.path) == 0o600
        # a file made 0644 by hand: the next API write leaves it 0600
        os.chmod(api.path, 0o644)
        assert api.store.poll() is False       # a mode change is not an edit
        api.create(name="second")
        assert mode(api.path) == 0o600 and "secret: whsec_" in api.path.read_text()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["hooks.yaml"]
    finally:
        api.close()


def check_config(tmp_path: Path, file_mode: int, secret: str | None):
    hook = {"id": "d" * 32, "account_id": PARENT, "name": "n", "uri": "http://127.0.0.1:9/",
            "hook": "all", **({"secret": secret} if secret else {})}
    (tmp_path / "hooks.yaml").write_text(yaml.safe_dump({"webhooks": [hook]}))
    os.chmod(tmp_path / "hooks.yaml", file_mode)
    (tmp_path / "eslhook.yaml").write_text(yaml.safe_dump({
        "switches": [{"name": "fs1"}], "accounts": [{"id": PARENT}]}))
    return subprocess.run([sys.executable, "-m", "eslhook", "check-config", "--config",
                           str(tmp_path / "eslhook.yaml")], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def test_check_config_warns_about_a_world_readable_hooks_file_with_secrets(tmp_path):
    result = check_config(tmp_path, 0o644, SECRET)
    assert result.returncode == 0, result.stdout + result.stderr
    warning, summary = result.stdout.splitlines()
    path = tmp_path / "hooks.yaml"
    assert warning == ("warning: %s is readable by its group and everyone (mode 0644) and "
                       "holds the signing secret or receiver credentials of 1 hook: "
                       "chmod 600 %s (eslhook writes "
                       "it 0600)" % (path, path))
    assert summary.startswith("ok: ") and SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize("file_mode, secret", [(0o600, SECRET), (0o644, None)])
def test_check_config_is_quiet_about_a_private_file_or_one_without_secrets(
        tmp_path, file_mode, secret):
    result = check_config(tmp_path, file_mode, secret)
    assert result.returncode == 0 and result.stdout.startswith("ok: "), result.stdout
    assert "warning" not in result.stdout
