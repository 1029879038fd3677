"""Small helpers shared by the test modules."""

import shutil
import subprocess
import time
from pathlib import Path

import gevent
import pytest


def wait_until(predicate, timeout: float = 5.0, step: float = 0.02) -> bool:
    """Poll ``predicate`` (yielding to the hub) until true or ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        gevent.sleep(step)
    return bool(predicate())


def self_signed_certificate(folder: Path, name: str, subject_alt_name: str) -> tuple[str, str]:
    """(cert, key) files of a one-day certificate for ``name``; skips without openssl."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=%s" % name, "-addext", "subjectAltName=" + subject_alt_name,
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return str(cert), str(key)
