"""/metrics and /healthz on the API listener of a running eslhook."""

import requests
import yaml
from helpers import FAST_TIMINGS, wait_until
from prometheus_client.parser import text_string_to_metric_families
from test_api_support import assert_error, start_api

from eslhook.config import load_config
from eslhook.fakeswitch import FakeSwitch
from eslhook.service import Bridge

ACCOUNT = "4c9f2c2e7f5a40b1a6c1c9d0e8f7a6b5"


def samples(text: str) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_and_health_are_served_without_a_token(tmp_path):
    fake = FakeSwitch(heartbeat_seconds=None)
    _, port = fake.start()
    (tmp_path / "eslhook.yaml").write_text(yaml.safe_dump({
        "switches": [{"name": "fs1", "host": "127.0.0.1", "port": port,
                      "password": "ClueCon"}],
        "accounts": [{"id": ACCOUNT, "auth_tokens": ["s3cret-token-value"]}],
        "api": {"listen": "127.0.0.1:0"}}))
    bridge = Bridge(load_config(tmp_path / "eslhook.yaml"), timings=FAST_TIMINGS)
    bridge.start()
    try:
        assert fake.wait_for_subscribers(1, timeout=5)
        base = bridge.api.url()
        fake.publish_generated("CHANNEL_CREATE", [("Unique-ID", "c1"),
                                                  ("Channel-Name", "sofia/internal/x")])
        assert wait_until(lambda: bridge.stats.mapped == 1)
        reply = requests.get(base + "/metrics", timeout=5)
        assert reply.status_code == 200 and reply.headers["Content-Type"].startswith("text/plain")
        got = samples(reply.text)
        assert got[("eslhook_switch_connected", (("switch", "fs1"),))] == 1
        assert got[("eslhook_events_unassigned_total", ())] == 1
        health = requests.get(base + "/healthz", timeout=5)
        assert health.status_code == 200 and health.json()["status"] == "ok"
        for text in (reply.text, health.text):
            assert "ClueCon" not in text and "s3cret-token-value" not in text
        fake.stop()   # the switch goes away: health says which, and since when
        assert wait_until(lambda: requests.get(base + "/healthz", timeout=5).status_code == 503)
        down = requests.get(base + "/healthz", timeout=5).json()
        assert down["down"] == ["fs1"] and down["switches"][0]["since"]
    finally:
        bridge.stop(drain_seconds=1)
        fake.stop()


def test_an_api_without_the_bridge_answers_503_on_metrics_and_health(tmp_path):
    api = start_api(tmp_path)        # no status port: nothing to report on
    try:
        for path in ("/metrics", "/healthz"):
            body = assert_error(api.call("GET", path, token=None), 503, "no bridge")
            assert body["data"]["message"].startswith("this API runs without the bridge")
    finally:
        api.close()
