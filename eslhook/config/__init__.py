"""Configuration: plain data, validated once, up front.

- ``model``: the frozen dataclasses (``Config`` and its parts) and ``check``
  for the ones built in code;
- ``documents``: YAML with line numbers, ``ConfigIssue``/``ConfigError``;
- ``messages``: the shipped JSON Schemas and what their errors say (file
  messages here, Kazoo field errors for the REST API);
- ``semantics``: the rules a schema cannot state;
- ``loading``: ``load_config``.

hooks.yaml I/O lives in ``eslhook/hooks/yaml_file.py``; its names are
re-exported here for the modules and tests that import them from here.
"""

from .documents import ConfigError, ConfigIssue, schema_issues
from .loading import load_config
from .messages import format_path, schema_document, schema_validator
from .model import (AccountConfig, ApiConfig, Config, DeliveryConfig, PayloadConfig,
                    ReconcileConfig, StorageConfig, SwitchConfig)
from .semantics import parse_listen

_HOOKS_FILE_NAMES = ("HOOKS_FILE_HEADER", "hooks_yaml", "load_hooks", "parse_hooks",
                     "parse_hooks_text", "validate_changed_hooks", "validate_hooks",
                     "write_hooks_file")


def __getattr__(name: str):
    """The hooks.yaml names, from where they live; looked up lazily because
    ``hooks/yaml_file.py`` itself imports this package's modules."""
    if name in _HOOKS_FILE_NAMES:
        from ..hooks import yaml_file
        return getattr(yaml_file, name)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


__all__ = [
    "AccountConfig", "ApiConfig", "Config", "ConfigError", "ConfigIssue", "DeliveryConfig",
    "HOOKS_FILE_HEADER", "PayloadConfig", "ReconcileConfig", "StorageConfig", "SwitchConfig",
    "format_path",
    "hooks_yaml", "load_config", "load_hooks", "parse_hooks", "parse_hooks_text",
    "parse_listen", "schema_document", "schema_issues", "schema_validator",
    "validate_changed_hooks", "validate_hooks", "write_hooks_file",
]
