"""`brook users ...` (SCRAM credentials, like kafka-configs.sh --entity-type users) and `brook acls ...`
(like kafka-acls.sh), over gRPC to the controllers.

The password is salted and iterated here (KIP-554): only the salted password leaves the CLI. It comes
from `--password-file`, the BROOK_USER_PASSWORD environment variable, or a prompt; `--password` works
but is visible in the process list.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

from brookpb import admin_pb2 as apb
from cluster.cli._output import render_table
from cluster.errors import BrookError, ErrorCode
from cluster.security.acl import CLUSTER_NAME, AclOperation, AclPermission, PatternType, ResourceType
from cluster.security.scram import ITERATIONS_MAX, ITERATIONS_MIN, MECHANISMS

EXIT_OK, EXIT_ERROR = 0, 1
ENV_PASSWORD = "BROOK_USER_PASSWORD"
_OPERATIONS = [op.name.lower() for op in AclOperation if op not in (AclOperation.UNKNOWN, AclOperation.ANY)]


def add_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    def group_of(name: str, help: str) -> Any:
        p = commands.add_parser(name, help=help, description=help)
        g = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
        g.required = True
        return g

    def sub(g: Any, name: str, help: str, handler: Any) -> Any:
        p = g.add_parser(name, help=help, description=help, parents=[common])
        p.set_defaults(handler=handler)
        return p

    g = group_of("users", "SCRAM users (credentials are stored salted and iterated in the metadata log)")
    p = sub(g, "create", "create a user or replace its password", users_create)
    p.add_argument("name")
    p.add_argument("--mechanism", action="append", choices=sorted(MECHANISMS), default=None,
                   help="repeatable (default: SCRAM-SHA-256 and SCRAM-SHA-512)")
    p.add_argument("--iterations", type=int, default=8192, help=f"{ITERATIONS_MIN}..{ITERATIONS_MAX} (default 8192)")
    p.add_argument("--password-file", metavar="FILE", help="read the password from the first line of FILE")
    p.add_argument("--password", help=f"the password (visible to other local users; prefer --password-file or "
                                      f"${ENV_PASSWORD})")
    p = sub(g, "delete", "delete a user's credentials", users_delete)
    p.add_argument("name")
    p.add_argument("--mechanism", action="append", choices=sorted(MECHANISMS), default=None,
                   help="repeatable (default: every mechanism the user has)")
    sub(g, "list", "users with their mechanisms and iteration counts", users_list)

    g = group_of("certs", "a development CA and node/user certificates (PEM) for TLS, mTLS and grpc.ssl.enabled")
    p = sub(g, "ca", "create DIR/ca.pem and DIR/ca-key.pem", certs_ca)
    p.add_argument("--dir", required=True)
    p.add_argument("--days", type=int, default=365)
    p = sub(g, "issue", "issue DIR/NAME.pem (chain) and DIR/NAME-key.pem signed by DIR/ca.pem: use broker-<id> "
                        "for brokers (grpc.ssl.enabled checks it)", certs_issue)
    p.add_argument("name", help="the certificate's CN, e.g. broker-1, controller-1, admin")
    p.add_argument("--dir", required=True)
    p.add_argument("--host", action="append", default=[], help="a DNS name or IP for the certificate (repeatable)")
    p.add_argument("--days", type=int, default=365)

    g = group_of("acls", "access control lists (Kafka's StandardAuthorizer model)")
    for action, handler, help in (
            ("add", acls_add, "add ACLs: each --operation for each principal on the resource"),
            ("list", acls_list, "list ACLs (filters narrow the list)"),
            ("remove", acls_remove, "remove the ACLs matching the filters")):
        p = sub(g, action, help, handler)
        target = p.add_mutually_exclusive_group(required=action == "add")
        target.add_argument("--topic", metavar="NAME")
        target.add_argument("--group", metavar="NAME")
        target.add_argument("--transactional-id", metavar="ID")
        target.add_argument("--cluster", action="store_true", help="the cluster resource")
        p.add_argument("--resource-pattern-type", choices=("literal", "prefixed") if action == "add" else
                       ("literal", "prefixed", "match", "any"), default="literal" if action == "add" else None)
        p.add_argument("--allow-principal", action="append", default=[], metavar="User:NAME")
        p.add_argument("--deny-principal", action="append", default=[], metavar="User:NAME")
        p.add_argument("--principal", action="append", default=[], metavar="User:NAME",
                       help=argparse.SUPPRESS if action == "add" else "filter by principal")
        p.add_argument("--host", default="*" if action == "add" else None, help="client host (default: any, *)")
        p.add_argument("--operation", action="append", default=[], choices=_OPERATIONS, type=str.lower)


# -- certs ------------------------------------------------------------------------------------------

def certs_ca(ctx: Any) -> int:
    from cluster.security.certs import create_ca

    ca_path = os.path.join(ctx.args.dir, "ca.pem")
    if os.path.exists(ca_path):
        raise BrookError(f"{ca_path} exists: keep it, or delete it first", ErrorCode.invalid_request)
    try:
        ca = create_ca(ctx.args.dir, days=ctx.args.days)
    except OSError as e:
        raise BrookError(f"cannot write to {ctx.args.dir}: {e.strerror or e}", ErrorCode.invalid_request) from None
    ctx.emit({"ca": str(ca.cert_path), "key": str(ca.key_path)},
             f"Wrote {ca.cert_path} and {ca.key_path} (keep the key private).")
    return EXIT_OK


def certs_issue(ctx: Any) -> int:
    from cluster.security.certs import issue, load_ca

    try:
        ca = load_ca(ctx.args.dir)
    except (OSError, ValueError) as e:
        raise BrookError(f"no usable CA in {ctx.args.dir} (run `brook certs ca --dir {ctx.args.dir}`): {e}",
                         ErrorCode.invalid_request) from None
    issued = issue(ca, ctx.args.dir, ctx.args.name, hosts=ctx.args.host or ["localhost", "127.0.0.1"],
                   days=ctx.args.days)
    ctx.emit({"cert": str(issued.cert_path), "key": str(issued.key_path)},
             f"Wrote {issued.cert_path} and {issued.key_path}.")
    return EXIT_OK


# -- users ------------------------------------------------------------------------------------------

def _password(args: Any) -> str:
    if args.password_file:
        try:
            with open(args.password_file, encoding="utf-8") as f:
                text = f.readline().rstrip("\r\n")
        except OSError as e:
            raise BrookError(f"cannot read --password-file: {e.strerror or e}", ErrorCode.invalid_request) from None
    elif args.password is not None:
        text = args.password
    elif os.environ.get(ENV_PASSWORD):
        text = os.environ[ENV_PASSWORD]
    elif sys.stdin.isatty():
        text = getpass.getpass(f"Password for {args.name}: ")
        if getpass.getpass("Again: ") != text:
            raise BrookError("the passwords differ", ErrorCode.invalid_request)
    else:
        text = sys.stdin.readline().rstrip("\r\n")
    if not text:
        raise BrookError("the password is empty", ErrorCode.invalid_request)
    return text


def _user_errors(reply: Any) -> list[str]:
    return [f"user {r.user!r}: {r.error_message or ErrorCode(r.error_code).name}" for r in reply.results
            if r.error_code]


def _fail(errors: list[str]) -> int:
    for line in errors:
        print(f"brook: error: {line}", file=sys.stderr)
    return EXIT_ERROR if errors else EXIT_OK


def users_create(ctx: Any) -> int:
    args = ctx.args
    if not ITERATIONS_MIN <= args.iterations <= ITERATIONS_MAX:
        raise BrookError(f"--iterations must be {ITERATIONS_MIN}..{ITERATIONS_MAX}", ErrorCode.invalid_request)
    mechanisms = list(dict.fromkeys(args.mechanism or ["SCRAM-SHA-256", "SCRAM-SHA-512"]))
    reply = ctx.controller().upsert_scram_user(args.name, _password(args), mechanisms, args.iterations)
    errors = _user_errors(reply)
    ctx.emit({"user": args.name, "mechanisms": mechanisms, "errors": errors},
             "" if errors else f"Saved {', '.join(mechanisms)} credentials for user {args.name}.")
    return _fail(errors)


def users_delete(ctx: Any) -> int:
    args = ctx.args
    mechanisms = args.mechanism
    if not mechanisms:
        described = ctx.controller().describe_scram_users([args.name])
        mechanisms = [c.mechanism for r in described.results if not r.error_code for c in r.credentials]
        if not mechanisms:
            return _fail([f"user {args.name!r} has no SCRAM credentials"])
    reply = ctx.controller().delete_scram_user(args.name, mechanisms)
    errors = _user_errors(reply)
    ctx.emit({"user": args.name, "deleted": mechanisms if not errors else [], "errors": errors},
             "" if errors else f"Deleted {', '.join(mechanisms)} credentials of user {args.name}.")
    return _fail(errors)


def users_list(ctx: Any) -> int:
    reply = ctx.controller().describe_scram_users()
    rows = [{"user": r.user, "mechanisms": [{"mechanism": c.mechanism, "iterations": c.iterations}
                                            for c in r.credentials]} for r in reply.results if not r.error_code]
    ctx.emit(rows, lambda: render_table(
        ["USER", "MECHANISMS"],
        [[r["user"], ", ".join(f"{m['mechanism']} ({m['iterations']})" for m in r["mechanisms"])] for r in rows])
        if rows else "(no users)")
    return EXIT_OK


# -- ACLs -------------------------------------------------------------------------------------------

def _resource(args: Any) -> tuple[ResourceType, str | None]:
    if args.topic is not None:
        return ResourceType.TOPIC, args.topic
    if args.group is not None:
        return ResourceType.GROUP, args.group
    if args.transactional_id is not None:
        return ResourceType.TRANSACTIONAL_ID, args.transactional_id
    if args.cluster:
        return ResourceType.CLUSTER, CLUSTER_NAME
    return ResourceType.ANY, None


def _check_principal(text: str) -> str:
    kind, sep, name = text.partition(":")
    if not sep or not kind or not name:
        raise BrookError(f"principal {text!r} is not Type:name (e.g. User:alice)", ErrorCode.invalid_request)
    return text


def acls_add(ctx: Any) -> int:
    args = ctx.args
    rtype, name = _resource(args)
    assert name is not None
    if not args.allow_principal and not args.deny_principal:
        raise BrookError("give --allow-principal and/or --deny-principal", ErrorCode.invalid_request)
    if not args.operation:
        raise BrookError("give at least one --operation", ErrorCode.invalid_request)
    pattern = PatternType[args.resource_pattern_type.upper()]
    entries = []
    for permission, principals in ((AclPermission.ALLOW, args.allow_principal),
                                   (AclPermission.DENY, args.deny_principal)):
        for principal in principals:
            for op in dict.fromkeys(args.operation):
                entries.append(apb.AclEntry(resource_type=int(rtype), resource_name=name, pattern_type=int(pattern),
                                            principal=_check_principal(principal), host=args.host,
                                            operation=int(AclOperation[op.upper()]), permission=int(permission)))
    reply = ctx.controller().create_acls(entries)
    errors = [f"{_entry_text(e)}: {r.error_message or ErrorCode(r.error_code).name}"
              for e, r in zip(entries, reply.results, strict=False) if r.error_code]
    added = [_entry_view(e) for e, r in zip(entries, reply.results, strict=False) if not r.error_code]
    ctx.emit({"added": added, "errors": errors}, lambda: "\n".join(f"Added {_entry_text(e)}." for e, r in
                                                                   zip(entries, reply.results, strict=False)
                                                                   if not r.error_code))
    return _fail(errors)


def _filter(args: Any) -> list[apb.AclFilter]:
    rtype, name = _resource(args)
    pattern = PatternType[(args.resource_pattern_type or ("match" if name else "any")).upper()]
    principals = [*args.principal, *args.allow_principal, *args.deny_principal] or [None]
    permission = AclPermission.ANY
    if args.allow_principal and not args.deny_principal:
        permission = AclPermission.ALLOW
    elif args.deny_principal and not args.allow_principal:
        permission = AclPermission.DENY
    out = []
    for principal in principals:
        for op in (args.operation or [None]):
            f = apb.AclFilter(resource_type=int(rtype), pattern_type=int(pattern), permission=int(permission),
                              operation=int(AclOperation[op.upper()]) if op else int(AclOperation.ANY))
            if name is not None:
                f.resource_name = name
            if principal is not None:
                f.principal = _check_principal(principal)
            if args.host is not None:
                f.host = args.host
            out.append(f)
    return out


def _entry_view(e: Any) -> dict[str, Any]:
    return {"resource_type": ResourceType(e.resource_type).name, "resource_name": e.resource_name,
            "pattern_type": PatternType(e.pattern_type).name, "principal": e.principal, "host": e.host,
            "operation": AclOperation(e.operation).name, "permission": AclPermission(e.permission).name}


def _entry_text(e: Any) -> str:
    v = _entry_view(e)
    return (f"{v['permission']} {v['principal']} from {v['host']} {v['operation']} on "
            f"{v['resource_type']}:{v['pattern_type']}:{v['resource_name']}")


def _rows(entries: list[Any]) -> str:
    views = [_entry_view(e) for e in entries]
    return render_table(["PERMISSION", "PRINCIPAL", "HOST", "OPERATION", "RESOURCE", "PATTERN", "NAME"],
                        [[v["permission"], v["principal"], v["host"], v["operation"], v["resource_type"],
                          v["pattern_type"], v["resource_name"]] for v in views])


def acls_list(ctx: Any) -> int:
    found: dict[str, Any] = {}
    for f in _filter(ctx.args):
        for e in ctx.controller().describe_acls(f).acls:
            found[e.SerializeToString(deterministic=True).hex()] = e
    entries = list(found.values())
    ctx.emit([_entry_view(e) for e in entries], lambda: _rows(entries) if entries else "(no ACLs)")
    return EXIT_OK


def acls_remove(ctx: Any) -> int:
    args = ctx.args
    filters = _filter(args)
    if all(not f.HasField("resource_name") and not f.HasField("principal") for f in filters) and not args.operation:
        raise BrookError("refusing to remove every ACL: give a resource, a principal or an operation",
                         ErrorCode.invalid_request)
    reply = ctx.controller().delete_acls(filters)
    removed = [e for r in reply.results for e in r.matching]
    ctx.emit([_entry_view(e) for e in removed],
             lambda: "\n".join(f"Removed {_entry_text(e)}." for e in removed) or "No ACL matched.")
    return EXIT_OK
