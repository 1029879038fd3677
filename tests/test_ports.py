"""The API's ports (eslhook/ports.py): what the API, /healthz and /metrics may
reach of the running bridge, and that they reach nothing else."""

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from eslhook.delivery.queue import DeliveryQueue
from eslhook.ports import DeliveryControl, LatencyCounts

PACKAGE = Path(__file__).parent.parent / "eslhook"
# what the service starts and reports through: none may import the service
PORT_USERS = sorted((PACKAGE / "api").glob("*.py")) + [
    PACKAGE / "health.py", PACKAGE / "metrics.py", PACKAGE / "ports.py"]


def imported_modules(path: Path, root: Path = PACKAGE.parent) -> set[str]:
    """Every module (and name) ``path`` imports, TYPE_CHECKING blocks included,
    relative imports resolved against its package under ``root``."""
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] \
                if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names.update("%s.%s" % (module, alias.name) for alias in node.names)
    return names


def test_the_api_health_and_metrics_do_not_import_the_service_not_even_for_types():
    # health.py and metrics.py imported eslhook.service under TYPE_CHECKING (for
    # "Bridge"), and the service imports the API: a cycle, hidden from the runtime
    assert len(PORT_USERS) > 10
    offenders = {path.name: sorted(n for n in imported_modules(path)
                                   if n == "eslhook.service" or n.startswith("eslhook.service."))
                 for path in PORT_USERS}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_imported_modules_sees_a_relative_import_under_type_checking(tmp_path):
    # the check above must see what it looks for: health.py's old import
    probe = tmp_path / "eslhook" / "api" / "x.py"
    probe.parent.mkdir(parents=True)
    probe.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                     "    from ..service import Bridge\nfrom . import envelope\n")
    assert {"eslhook.service", "eslhook.service.Bridge", "eslhook.api.envelope"} <= \
        imported_modules(probe, tmp_path)


def test_importing_the_api_does_not_import_the_service():
    code = ("import sys, eslhook.api, eslhook.health, eslhook.metrics; "
            "print(sorted(m for m in sys.modules if m.startswith('eslhook.service')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=PACKAGE.parent, check=True,
                         capture_output=True, text=True, timeout=30).stdout
    assert out.strip() == "[]"


def port_methods() -> list[str]:
    return [name for name, member in vars(DeliveryControl).items()
            if inspect.isfunction(member) and not name.startswith("_")]


@pytest.mark.parametrize("method", port_methods())
def test_delivery_queue_fits_the_delivery_control_port(method):
    # DeliveryQueue satisfies the port structurally (mypy checks it where
    # service.py hands it to the API); this catches a renamed or re-shaped
    # method in the test run too
    wanted = inspect.signature(getattr(DeliveryControl, method))
    actual = inspect.signature(getattr(DeliveryQueue, method))
    assert [(p.name, p.kind, p.default) for p in actual.parameters.values()] == \
        [(p.name, p.kind, p.default) for p in wanted.parameters.values()]


def test_the_port_has_the_methods_the_api_calls():
    assert sorted(port_methods()) == ["attempts", "replay", "resend", "resume_hook", "test"]


def test_latency_counts_need_one_count_per_bucket_and_one_for_inf():
    assert LatencyCounts((0.1,), (1, 2), 0.3).buckets() == [("0.1", 1), ("+Inf", 3)]
    with pytest.raises(ValueError, match="one per bound"):
        LatencyCounts((0.1, 1.0), (1, 2), 0.3)
