"""The config package's layers apart: the schema walker's two renderings, the
check of dataclasses built in code (the same rules as a file), ``trusted``."""

from __future__ import annotations

import pytest

from eslhook.config import ApiConfig, DeliveryConfig, SwitchConfig, parse_listen, schema_validator
from eslhook.config.messages import file_message, findings, kazoo_detail, kazoo_field
from eslhook.config.model import trusted
from eslhook.config.semantics import format_listen

HOOK = {"name": "n", "uri": "http://127.0.0.1/x", "hook": "all"}


def rendered(data: dict) -> list[tuple[str, str, str, dict]]:
    errors = schema_validator("webhook").iter_errors(data)
    return sorted((kazoo_field(f), f.kind, file_message(f), kazoo_detail(f))
                  for f in findings(errors))


def test_one_schema_error_renders_for_a_file_and_for_the_api():
    [(field, kind, message, detail)] = rendered(dict(HOOK, retries=99))
    assert (field, kind) == ("retries", "maximum")
    assert message == "must be between 0 and 10 (got 99)"
    assert detail == {"message": "Value must be at most 10", "target": 10, "value": 99}


def test_each_missing_and_each_unknown_key_is_its_own_finding():
    found = rendered({"name": "n", "retires": 3, "colour": "x"})
    assert [(f, k) for f, k, _, _ in found] == [
        ("colour", "additionalProperties"), ("hook", "required"),
        ("retires", "additionalProperties"), ("uri", "required")]
    retires = found[2]
    assert retires[2] == "unknown key 'retires': did you mean 'retries'?"
    assert retires[3] == {"message": "Field is not allowed: did you mean 'retries'?"}
    assert found[1][3] == {"message": "Field is required but missing"}


def test_a_secret_of_the_wrong_type_is_not_echoed_in_a_file_message():
    [(field, kind, message, _)] = rendered(dict(HOOK, secret=12345678))
    assert (field, kind) == ("secret", "type")
    assert "12345678" not in message and "must be a string" in message


@pytest.mark.parametrize("host, port", [("127.0.0.1", 8000), ("::1", 0), ("localhost", 65535)])
def test_listen_text_round_trips(host, port):
    assert parse_listen(format_listen(host, port)) == (host, port)


def test_api_config_built_in_code_refuses_a_malformed_hashed_token():
    # a file with this token was refused; built in code it used to be accepted
    with pytest.raises(ValueError, match=r"ApiConfig\.admin_tokens\[0\]: a hashed token"):
        ApiConfig(admin_tokens=("sha256:abc",))


def test_api_config_built_in_code_refuses_a_body_limit_a_file_cannot_set():
    with pytest.raises(ValueError, match=r"ApiConfig\.max_body_bytes: must be between 1024"):
        ApiConfig(max_body_bytes=10 ** 9)


def test_api_config_built_in_code_keeps_port_zero_and_ipv6_hosts():
    assert (ApiConfig(host="::1", port=0).host, ApiConfig(host="::1", port=0).port) == ("::1", 0)
    with pytest.raises(ValueError, match=r"ApiConfig\.host/port: must be host:port"):
        ApiConfig(port=70000)


def test_delivery_config_built_in_code_names_the_bad_network_and_keeps_tuples():
    with pytest.raises(ValueError, match=r"DeliveryConfig\.tenant_allowed_networks\[1\]: "
                                         r"not a network"):
        DeliveryConfig(tenant_allowed_networks=["10.0.0.0/8", "nonsense"])
    config = DeliveryConfig(blocked_networks=["10.0.0.0/8"], retry_schedule_seconds=[1, 2])
    assert (config.blocked_networks, config.retry_schedule_seconds) == (("10.0.0.0/8",), (1, 2))


def test_every_bad_field_is_named_at_once_and_a_password_is_not_shown():
    with pytest.raises(ValueError) as caught:
        SwitchConfig(name="fs1", port=0, password=918273645, format="xml")
    text = str(caught.value)
    for part in ("SwitchConfig.port: must be between 1 and 65535 (got 0)",
                 "SwitchConfig.format: must be one of: json, plain (got 'xml')",
                 "SwitchConfig.password: must be a string"):
        assert part in text
    assert "918273645" not in text


def test_trusted_builds_without_checking_but_refuses_unknown_or_missing_fields():
    # the loader's values passed the schema already; trusted() does not look again
    assert trusted(SwitchConfig, name="fs1", port=0).port == 0
    assert trusted(SwitchConfig, name="fs1") == SwitchConfig(name="fs1")
    with pytest.raises(TypeError, match="unknown field"):
        trusted(SwitchConfig, name="fs1", colour="blue")
    with pytest.raises(TypeError, match="missing field name"):
        trusted(SwitchConfig, port=1)
