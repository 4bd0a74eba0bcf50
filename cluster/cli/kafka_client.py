"""Client properties of the CLI's Kafka-protocol verbs: `--command-config FILE`, as Kafka's tools.

A Kafka client properties file (`security.protocol=SASL_SSL`, `sasl.mechanism=SCRAM-SHA-512`,
`sasl.jaas.config=... username="u" password="p";`, `ssl.truststore.location=ca.pem`, ...) or
librdkafka's spellings of the same (`sasl.username`, `ssl.ca.location`, ...) is turned into one
librdkafka configuration, merged into every confluent-kafka client the CLI makes (`client_config`),
and into kafka-python's keyword arguments for `brook log-dirs` (`kafka_python_options`; librdkafka
has no DescribeLogDirs).

Everything here is pure except `load_command_config`, which reads the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cluster.errors import BrookError, ErrorCode

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
JAAS_MODULES = {
    "org.apache.kafka.common.security.plain.PlainLoginModule": "PLAIN",
    "org.apache.kafka.common.security.scram.ScramLoginModule": "SCRAM",
}

# Keys passed to librdkafka unchanged (same name and meaning in both clients).
PASSTHROUGH = frozenset({
    "security.protocol", "sasl.mechanism", "sasl.username", "sasl.password",
    "ssl.ca.location", "ssl.ca.pem", "ssl.certificate.location", "ssl.certificate.pem", "ssl.key.location",
    "ssl.key.pem", "ssl.key.password", "ssl.keystore.password", "ssl.endpoint.identification.algorithm",
    "ssl.cipher.suites", "ssl.crl.location", "client.id", "client.rack",
})
# Java-only keys with no librdkafka meaning for the CLI: accepted silently (Kafka's tools read them).
JAVA_IGNORED = frozenset({
    "bootstrap.servers", "request.timeout.ms", "default.api.timeout.ms", "retries", "retry.backoff.ms",
    "ssl.protocol", "ssl.enabled.protocols", "ssl.keymanager.algorithm", "ssl.trustmanager.algorithm",
    "ssl.secure.random.implementation", "ssl.provider", "sasl.login.class", "sasl.client.callback.handler.class",
    "sasl.login.callback.handler.class", "connections.max.idle.ms", "metadata.max.age.ms",
})


def parse_properties(text: str) -> dict[str, str]:
    """Java .properties: `key=value`, `key: value` or `key value`; `#`/`!` comments; a line ending in an
    odd number of backslashes continues on the next (its leading blanks dropped); `\\t \\n \\\\` escapes."""
    out: dict[str, str] = {}
    logical: list[str] = []
    for raw in text.splitlines():
        line = raw.lstrip() if logical else raw.strip()
        if not logical and (not line or line[0] in "#!"):
            continue
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2:
            logical.append(line[:-1])
            continue
        logical.append(line)
        _put(out, "".join(logical))
        logical = []
    if logical:
        _put(out, "".join(logical))
    return out


def _put(out: dict[str, str], line: str) -> None:
    m = re.match(r"((?:[^\\=:\s]|\\.)*)\s*[=:]?\s*(.*)$", line, re.S)
    assert m is not None, "the pattern matches any string"
    key, value = _unescape(m.group(1)), _unescape(m.group(2))
    if key:
        out[key] = value


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}.get(m.group(1), m.group(1)), text)


def jaas_credentials(jaas: str, source: str) -> tuple[str, str, str]:
    """(module kind "PLAIN"/"SCRAM", username, password) from a `sasl.jaas.config` value."""
    m = re.match(r"\s*([\w.$]+)\s+(required|requisite|sufficient|optional)\b(.*?);?\s*$", jaas, re.S)
    if m is None:
        raise BrookError(f"{source}: sasl.jaas.config is not 'LoginModule required key=\"value\" ...;'",
                         ErrorCode.invalid_config)
    kind = JAAS_MODULES.get(m.group(1))
    if kind is None:
        raise BrookError(f"{source}: sasl.jaas.config login module {m.group(1)} is not supported (the CLI speaks "
                         f"{', '.join(MECHANISMS)}: use {' or '.join(sorted(JAAS_MODULES))})", ErrorCode.invalid_config)
    options = {k: (re.sub(r"\\(.)", r"\1", v[1:-1]) if v.startswith('"') else v)
               for k, v in re.findall(r'(\w+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s;]+)', m.group(3))}
    missing = [k for k in ("username", "password") if k not in options]
    if missing:
        raise BrookError(f"{source}: sasl.jaas.config has no {' or '.join(missing)}", ErrorCode.invalid_config)
    return kind, options["username"], options["password"]


def _is_pem(head: bytes) -> bool:
    return b"-----BEGIN " in head


def librdkafka_security(props: Mapping[str, str], source: str,
                        file_head: Any = None) -> tuple[dict[str, str], list[str]]:
    """(the librdkafka settings, warnings) for these client properties, or a one-line BrookError.

    `file_head(path) -> bytes | None` returns the first bytes of a file (None: it cannot be read); it is
    how a Java truststore/keystore is told apart from a PEM file (librdkafka reads no JKS)."""
    conf: dict[str, str] = {}
    warnings: list[str] = []
    unknown: list[str] = []
    for key, value in props.items():
        if key in PASSTHROUGH:
            conf[key] = value
        elif key not in JAVA_IGNORED and not key.startswith(("ssl.truststore.", "ssl.keystore.", "sasl.jaas.")):
            unknown.append(key)
    if unknown:
        warnings.append(f"{source}: ignoring {', '.join(sorted(unknown))} (not a client security setting the CLI uses)")

    protocol = conf.get("security.protocol", "PLAINTEXT").upper()
    if protocol not in PROTOCOLS:
        raise BrookError(f"{source}: security.protocol={conf['security.protocol']} is not one of "
                         f"{', '.join(PROTOCOLS)}", ErrorCode.invalid_config)
    conf["security.protocol"] = protocol
    sasl = protocol.startswith("SASL_")

    jaas = props.get("sasl.jaas.config")
    if jaas is not None:
        kind, user, password = jaas_credentials(jaas, source)
        conf.setdefault("sasl.username", user)
        conf.setdefault("sasl.password", password)
        conf.setdefault("sasl.mechanism", "PLAIN" if kind == "PLAIN" else "SCRAM-SHA-512")
        if (kind == "PLAIN") != (conf["sasl.mechanism"].upper() == "PLAIN"):
            raise BrookError(f"{source}: sasl.mechanism={conf['sasl.mechanism']} does not match the "
                             f"sasl.jaas.config login module ({kind})", ErrorCode.invalid_config)
    if sasl:
        mechanism = conf.setdefault("sasl.mechanism", "GSSAPI").upper()
        if mechanism not in MECHANISMS:
            raise BrookError(f"{source}: sasl.mechanism={mechanism} is not supported (use one of "
                             f"{', '.join(MECHANISMS)})", ErrorCode.invalid_config)
        conf["sasl.mechanism"] = mechanism
        missing = [k for k in ("sasl.username", "sasl.password") if not conf.get(k)]
        if missing:
            raise BrookError(f"{source}: security.protocol={protocol} needs a user and password (sasl.jaas.config, "
                             f"or sasl.username and sasl.password)", ErrorCode.invalid_config)
    elif any(k.startswith("sasl.") for k in conf) or jaas is not None:
        warnings.append(f"{source}: sasl.* settings ignored: security.protocol={protocol} does not use SASL")
        for k in [k for k in conf if k.startswith("sasl.")]:
            del conf[k]

    head = file_head or (lambda _path: b"-----BEGIN ")
    trust_type = props.get("ssl.truststore.type", "").upper()
    if "ssl.truststore.location" in props:
        path = props["ssl.truststore.location"]
        data = head(path)
        if trust_type not in ("", "PEM") or (data is not None and not _is_pem(data)):
            raise BrookError(f"{source}: ssl.truststore.location={path} is a {trust_type or 'JKS/PKCS12'} truststore; "
                             "the CLI (librdkafka) reads PEM: export the CA (keytool -exportcert -rfc) and set "
                             "ssl.truststore.type=PEM or ssl.ca.location", ErrorCode.invalid_config)
        conf.setdefault("ssl.ca.location", path)
    if "ssl.truststore.certificates" in props:
        conf.setdefault("ssl.ca.pem", props["ssl.truststore.certificates"])
    if "ssl.keystore.location" in props:
        path = props["ssl.keystore.location"]
        key_type = props.get("ssl.keystore.type", "").upper()
        data = head(path)
        if key_type == "PEM" or (key_type == "" and data is not None and _is_pem(data)):
            conf.setdefault("ssl.certificate.location", path)  # a Java PEM keystore: key and chain in one file
            conf.setdefault("ssl.key.location", path)
        elif key_type in ("", "PKCS12"):
            conf["ssl.keystore.location"] = path  # librdkafka reads PKCS#12 (with ssl.keystore.password)
        else:
            raise BrookError(f"{source}: ssl.keystore.type={key_type} is not supported: use PKCS12 or PEM",
                             ErrorCode.invalid_config)
    if "ssl.keystore.certificate.chain" in props:
        conf.setdefault("ssl.certificate.pem", props["ssl.keystore.certificate.chain"])
    if "ssl.keystore.key" in props:
        conf.setdefault("ssl.key.pem", props["ssl.keystore.key"])
    if conf.get("ssl.endpoint.identification.algorithm", None) == "":
        conf["ssl.endpoint.identification.algorithm"] = "none"  # Java's empty value: no host-name check

    tls = protocol in ("SSL", "SASL_SSL")
    if not tls:
        dropped = sorted(k for k in conf if k.startswith("ssl."))
        if dropped:
            warnings.append(f"{source}: {', '.join(dropped)} ignored: security.protocol={protocol} does not use TLS")
            for k in dropped:
                del conf[k]
    return conf, warnings


# librdkafka's codes for "the connection failed" (transport, timeout, all brokers down) and for the
# reasons behind such a failure that its error callback reports (authentication, TLS).
LOCAL_CONNECTION_CODES = frozenset({-195, -185, -187})  # _TRANSPORT, _TIMED_OUT, _ALL_BROKERS_DOWN
LOCAL_CAUSE_CODES = frozenset({-169, -181})  # _AUTHENTICATION, _SSL


class ConnectionErrors:
    """librdkafka's error callback: remembers why connections failed. A request then fails only with
    "transport failure" or "timed out"; `cause()` gives the reason (wrong password, TLS) to print."""

    def __init__(self) -> None:
        self.cause_error: Any = None
        self.other_error: Any = None
        self.clients: list[Any] = []

    def track(self, client: Any) -> Any:
        """Register a client whose queued errors `cause()` serves first (poll(0): an AdminClient, a
        Producer, or a Consumer that is assigned nothing, so polling consumes no record)."""
        self.clients.append(client)
        return client

    def __call__(self, err: Any) -> None:
        if err.code() in LOCAL_CAUSE_CODES:
            self.cause_error = err
        elif "security.protocol" in err.str():  # librdkafka's hint: a TLS/SASL listener spoken to in plaintext
            self.other_error = err

    def cause(self, code: int) -> tuple[str, str] | None:
        """(text, name) of the reason behind a failure with librdkafka code `code`, if one was seen."""
        if code not in LOCAL_CONNECTION_CODES:
            return None
        for client in self.clients:
            try:
                client.poll(0)  # librdkafka serves its error callback only from poll()
            except Exception:  # a closed client
                pass
        err = self.cause_error or self.other_error
        return None if err is None else (err.str(), err.name())


CONNECTION_ERRORS = ConnectionErrors()


def client_config(bootstrap: str, timeout_s: float, security: Mapping[str, str] | None = None,
                  **extra: Any) -> dict[str, Any]:
    """One confluent-kafka configuration: the CLI's defaults, `extra`, then the --command-config settings."""
    from cluster.cli.groups import _quiet_logger

    conf: dict[str, Any] = {"bootstrap.servers": bootstrap, "client.id": "brook-cli",
                            "socket.timeout.ms": int(timeout_s * 1000), "logger": _quiet_logger(), "log_level": 0,
                            "error_cb": CONNECTION_ERRORS}
    conf.update(extra)
    conf.update(security or {})
    return conf


def kafka_python_options(security: Mapping[str, str]) -> dict[str, Any]:
    """kafka-python's keyword arguments for the same settings (what `brook log-dirs` needs)."""
    protocol = security.get("security.protocol", "PLAINTEXT")
    out: dict[str, Any] = {"security_protocol": protocol}
    if protocol.startswith("SASL_"):
        out.update(sasl_mechanism=security["sasl.mechanism"], sasl_plain_username=security["sasl.username"],
                   sasl_plain_password=security["sasl.password"])
    if protocol in ("SSL", "SASL_SSL"):
        if "ssl.keystore.location" in security or any(k.endswith(".pem") for k in security):
            raise BrookError("brook log-dirs reads TLS material from files only: give ssl.ca.location / "
                             "ssl.certificate.location / ssl.key.location as PEM files", ErrorCode.invalid_config)
        for ours, theirs in (("ssl.ca.location", "ssl_cafile"), ("ssl.certificate.location", "ssl_certfile"),
                             ("ssl.key.location", "ssl_keyfile"), ("ssl.key.password", "ssl_password"),
                             ("ssl.crl.location", "ssl_crlfile"), ("ssl.cipher.suites", "ssl_ciphers")):
            if ours in security:
                out[theirs] = security[ours]
        out["ssl_check_hostname"] = security.get("ssl.endpoint.identification.algorithm", "https") != "none"
    return out


def load_command_config(path: str) -> tuple[dict[str, str], list[str]]:
    """Read and translate a --command-config file (errors are one-line BrookErrors)."""
    source = f"--command-config {path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise BrookError(f"cannot read {source}: {e.strerror or e}", ErrorCode.invalid_config) from None
    except UnicodeDecodeError:
        raise BrookError(f"cannot read {source}: not a UTF-8 text file", ErrorCode.invalid_config) from None

    def head(p: str) -> bytes | None:
        try:
            with open(p, "rb") as f:
                return f.read(4096)
        except OSError:
            return None

    conf, warnings = librdkafka_security(parse_properties(text), source, head)
    for key in ("ssl.ca.location", "ssl.certificate.location", "ssl.key.location", "ssl.keystore.location",
                "ssl.crl.location"):
        if key in conf and head(conf[key]) is None:
            raise BrookError(f"{source}: {key}={conf[key]}: cannot read the file", ErrorCode.invalid_config)
    return conf, warnings
