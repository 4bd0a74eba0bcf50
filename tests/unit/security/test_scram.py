"""SCRAM server against RFC 7677's test vector and a client implementation; PLAIN over SCRAM credentials."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from cluster.security.principal import apply_mapping_rules, parse_mapping_rules, subject_dn
from cluster.security.scram import (
    ScramError,
    ScramServer,
    check_plain,
    credential_from_password,
    parse_plain,
)

RFC_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
RFC_SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"


def test_rfc7677_vector():
    cred = credential_from_password("SCRAM-SHA-256", "pencil", RFC_SALT, 4096)
    server = ScramServer("SCRAM-SHA-256", lambda user: cred if user == "user" else None, RFC_SERVER_NONCE)
    first = server.first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
    assert first == b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    final = server.final(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                         b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    assert final == b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    assert server.authenticated and server.user == "user"


def _client_final(mechanism, password, client_first_bare, server_first):
    hash_name = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}[mechanism]
    attrs = dict(p.split("=", 1) for p in server_first.split(","))
    salted = hashlib.pbkdf2_hmac(hash_name, password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
    client_key = hmac.new(salted, b"Client Key", hash_name).digest()
    stored = hashlib.new(hash_name, client_key).digest()
    without_proof = f"c=biws,r={attrs['r']}"
    auth = f"{client_first_bare},{server_first},{without_proof}".encode()
    sig = hmac.new(stored, auth, hash_name).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, sig, strict=True))
    return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
@pytest.mark.parametrize("password, ok", [("s3cret", True), ("wrong", False)])
def test_exchange(mechanism, password, ok):
    cred = credential_from_password(mechanism, "s3cret", b"saltsaltsalt", 4096)
    server = ScramServer(mechanism, {"alice": cred}.get, "servernonce0123456789")
    bare = "n=alice,r=clientnonce"
    server_first = server.first(f"n,,{bare}".encode()).decode()
    final = _client_final(mechanism, password, bare, server_first)
    if ok:
        assert server.final(final).startswith(b"v=")
        assert server.authenticated
    else:
        with pytest.raises(ScramError):
            server.final(final)
        assert not server.authenticated


@pytest.mark.parametrize("message", [
    b"n,,n=bob,r=x",                 # unknown user
    b"p=tls-unique,,n=alice,r=x",    # channel binding
    b"n,a=mallory,n=alice,r=x",      # authzid != user
    b"n,,n=alice,r=x,t=tokenauth",   # extension
    b"n,,r=x",                       # no user
    b"garbage",
    b"\xff\xfe",
])
def test_bad_client_first(message):
    cred = credential_from_password("SCRAM-SHA-256", "s3cret", b"salt", 4096)
    server = ScramServer("SCRAM-SHA-256", {"alice": cred}.get, "servernonce0123456789")
    with pytest.raises(ScramError):
        server.first(message)
    assert not server.authenticated


def test_mechanism_mismatch_is_refused():
    cred = credential_from_password("SCRAM-SHA-256", "s3cret", b"salt", 4096)
    server = ScramServer("SCRAM-SHA-512", {"alice": cred}.get, "servernonce0123456789")
    with pytest.raises(ScramError):
        server.first(b"n,,n=alice,r=x")


def test_wrong_nonce_is_refused():
    cred = credential_from_password("SCRAM-SHA-256", "s3cret", b"salt", 4096)
    server = ScramServer("SCRAM-SHA-256", {"alice": cred}.get, "servernonce0123456789")
    server_first = server.first(b"n,,n=alice,r=abc").decode()
    final = _client_final("SCRAM-SHA-256", "s3cret", "n=alice,r=abc", server_first.replace("r=abc", "r=abX"))
    with pytest.raises(ScramError):
        server.final(final)


def test_plain():
    creds = [credential_from_password("SCRAM-SHA-512", "s3cret", b"salt", 4096)]
    assert parse_plain(b"\0alice\0s3cret") == ("alice", "s3cret")
    assert check_plain(creds, "s3cret")
    assert not check_plain(creds, "s3cre")
    assert not check_plain([], "s3cret")
    for bad in (b"alice\0s3cret", b"\0\0s3cret", b"x\0alice\0s3cret"):
        with pytest.raises(ScramError):
            parse_plain(bad)


def test_subject_dn_and_rules():
    subject = ((("countryName", "US"),), (("organizationName", "Example, Inc"),), (("commonName", "alice"),))
    dn = subject_dn(subject)
    assert dn == "CN=alice,O=Example\\, Inc,C=US"
    assert apply_mapping_rules(parse_mapping_rules("DEFAULT"), dn) == dn
    rules = parse_mapping_rules("RULE:^CN=(.*?),O=.*$/$1/U, DEFAULT")
    assert apply_mapping_rules(rules, dn) == "ALICE"
    assert apply_mapping_rules(parse_mapping_rules("RULE:^CN=bob,.*$/bob/"), dn) is None
    with pytest.raises(ValueError):
        parse_mapping_rules("RULE:nope")



def test_client_nonce_sent_twice_is_accepted_as_kafka_does():
    """librdkafka < 2.1 sends r=<client nonce><client nonce><server nonce>; Kafka accepts a final
    nonce that ends with the server-first nonce, and so does Brook (the proof covers it as sent)."""
    cred = credential_from_password("SCRAM-SHA-512", "s3cret", b"salt", 4096)
    server = ScramServer("SCRAM-SHA-512", {"alice": cred}.get, "servernonce0123456789")
    server_first = server.first(b"n,,n=alice,r=abc").decode()
    attrs = dict(p.split("=", 1) for p in server_first.split(","))
    salted = hashlib.pbkdf2_hmac("sha512", b"s3cret", base64.b64decode(attrs["s"]), int(attrs["i"]))
    client_key = hmac.new(salted, b"Client Key", "sha512").digest()
    without_proof = f"c=biws,r=abc{attrs['r']}"
    auth = f"n=alice,r=abc,{server_first},{without_proof}".encode()
    sig = hmac.new(hashlib.sha512(client_key).digest(), auth, "sha512").digest()
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, sig, strict=True))).decode()
    assert server.final(f"{without_proof},p={proof}".encode()).startswith(b"v=")
