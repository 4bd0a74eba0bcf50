"""Every property Brook reads: Kafka's names, Kafka's defaults where they suit, and the reason where not.

    SERVER_KEYS / TOPIC_KEYS     the schema (`ConfigKey`: type, default, validator, doc, Kafka's default)
    load_config(path, overrides, env) -> Config
                                 defaults < properties file < BROOK_CFG_* environment < --override k=v
    validate_topic_config(name, value) -> str      per-topic configs on create / alter
    validate_server_config(name, value) -> str     one server key (e.g. a dynamic cluster-wide alter)
    topic_config_defaults(server) -> {topic key: str}
    markdown_table() -> str      the reference in docs/CONFIG.md (`python -m cluster.config > docs/CONFIG.md`)

Every mistake is a `ConfigError` with a one-line message that names the key, the value and what is
allowed, and where the value came from (`server.properties:7:`, `BROOK_CFG_NUM_PARTITIONS:`, `--override:`).

The package is pure: it reads the properties file in `load_config` and nothing else. The quorum secret
is held in a `Secret` whose repr and str are masked, so printing a `Config` never leaks it.

Modules (import from `cluster.config`, not from them):

    values.py      value types (Secret, Endpoint, Voter), validators, address parsing, ConfigKey
    schema.py      the tables: SERVER_KEYS, TOPIC_KEYS, TOPIC_TO_SERVER_DEFAULT, ALIASES
    properties.py  the Java .properties subset
    loading.py     Config, load_config, cross-key checks, single-key checks, topic_config_defaults
    reference.py   markdown_table (docs/CONFIG.md)
"""

from __future__ import annotations

from cluster.config.loading import (
    Config,
    load_config,
    topic_config_defaults,
    validate_server_config,
    validate_topic_config,
)
from cluster.config.properties import parse_properties
from cluster.config.reference import markdown_table
from cluster.config.schema import ALIASES, SERVER_KEYS, TOPIC_KEYS, TOPIC_TO_SERVER_DEFAULT
from cluster.config.values import (
    ENV_PREFIX,
    LISTENER_NAMES,
    QUORUM_SECRET_CHARS_MIN,
    ROLES,
    SECURITY_PROTOCOLS,
    Choice,
    ConfigKey,
    Custom,
    Endpoint,
    ListOf,
    Range,
    Secret,
    Validator,
    Voter,
)

__all__ = [
    "ALIASES",
    "ENV_PREFIX",
    "LISTENER_NAMES",
    "QUORUM_SECRET_CHARS_MIN",
    "ROLES",
    "SECURITY_PROTOCOLS",
    "SERVER_KEYS",
    "TOPIC_KEYS",
    "TOPIC_TO_SERVER_DEFAULT",
    "Choice",
    "Config",
    "ConfigKey",
    "Custom",
    "Endpoint",
    "ListOf",
    "Range",
    "Secret",
    "Validator",
    "Voter",
    "load_config",
    "markdown_table",
    "parse_properties",
    "topic_config_defaults",
    "validate_server_config",
    "validate_topic_config",
]
