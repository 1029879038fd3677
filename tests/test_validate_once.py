"""One copy of each rule: the config schema plus the one semantic layer decide,
for a file, for config objects built in code, and for the delivery policies
(which are checked by the delivery section's rules under their own names)."""

from __future__ import annotations

import math

import pytest

from eslhook.config import ConfigError, DeliveryConfig, load_config
from eslhook.delivery.policy import CircuitPolicy, RetryPolicy


@pytest.mark.parametrize("line, key", [
    ("  timeout_seconds: .nan", "delivery.timeout_seconds"),
    ("  retry_schedule_seconds: [5, .inf]", "delivery.retry_schedule_seconds[1]"),
    ("  jitter: .nan", "delivery.jitter"),
])
def test_a_nan_or_infinite_number_in_the_file_is_refused_naming_key_and_line(
        tmp_path, line, key):
    # YAML's .nan / .inf pass a JSON Schema's "number, minimum 0" (NaN compares
    # false): before, a NaN timeout was accepted and would never fire
    path = tmp_path / "eslhook.yaml"
    path.write_text("switches:\n  - name: fs1\ndelivery:\n%s\n" % line)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    (issue,) = caught.value.issues
    assert issue.path == key and "finite number" in issue.message and issue.line == 4


@pytest.mark.parametrize("build, message", [
    (lambda: DeliveryConfig(timeout_seconds=math.nan),
     "DeliveryConfig.timeout_seconds: must be a finite number"),
    (lambda: RetryPolicy(schedule_seconds=(1.0, math.inf)),
     "RetryPolicy.schedule_seconds[1]: must be a finite number"),
    (lambda: RetryPolicy(schedule_seconds=(1.0, -1.0)),
     "RetryPolicy.schedule_seconds[1]: must be at least 0"),
    (lambda: CircuitPolicy(failures_to_open=0), "CircuitPolicy.failures_to_open: must be at least 1"),
    (lambda: CircuitPolicy(open_seconds=math.nan), "CircuitPolicy.open_seconds: must be a finite"),
])
def test_objects_built_in_code_meet_the_same_rules_under_their_own_names(build, message):
    with pytest.raises(ValueError) as caught:
        build()
    assert message in str(caught.value)


def test_what_the_file_accepts_the_policies_accept():
    config = DeliveryConfig(retry_schedule_seconds=(0.0, 2.5), jitter=0.0,
                            circuit_failures=1, circuit_open_seconds=0.0)
    assert RetryPolicy.from_config(config).schedule_seconds == (0.0, 2.5)
    assert CircuitPolicy(config.circuit_failures, config.circuit_open_seconds).open_seconds == 0.0
