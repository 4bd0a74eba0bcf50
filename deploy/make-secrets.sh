#!/bin/sh
# One-time step before the first `docker compose up` of deploy/compose.yaml or compose.combined.yaml:
# writes the files their `secrets:` mount into DIR (default deploy/secrets, next to this script).
#
#   ca.pem                      the dev CA every node and client trusts (ca-key.pem signs; keep it offline)
#   controller-<id>.pem/-key    controller-1..3 (compose.yaml)
#   broker-<id>.pem/-key        broker-101..103 (compose.yaml: services broker-1..3) and broker-1..3
#                               (compose.combined.yaml: services node-1..3); grpc.ssl.enabled requires
#                               CN=broker-<node.id>
#   admin.pem/-key              the CLI's certificate (CN=admin, a super user)
#   quorum.secret               the Raft port's secret (controller.quorum.secret)
#   admin.password              the SCRAM password of the Kafka super user `admin`
#
# Every certificate names its service and localhost/127.0.0.1 (the EXTERNAL listeners are advertised as
# localhost). Existing files are kept, so a rerun only adds what is missing. Run with `make secrets`, or
# with a brook on PATH (BROOK="python -m cluster.cli.main" works from a checkout), or in the image:
#   docker run --rm --user "$(id -u)" -v "$PWD/deploy:/deploy" --entrypoint sh brook:latest \
#       /deploy/make-secrets.sh /deploy/secrets
#
# Permissions: DIR is 0700 (only you reach the files on the host) and the files are 0644, because compose
# bind-mounts file secrets with the host file's owner and mode and the image runs as uid 10001. On a host
# where DIR's parent is shared, `sudo chown -R 10001 DIR && chmod 600 DIR/*` is the stricter alternative.
set -eu

DIR=${1:-$(dirname "$0")/secrets}
BROOK=${BROOK:-brook}

umask 077
mkdir -p "$DIR"
chmod 700 "$DIR"

random() {
    # 32 random bytes as 64 hex digits
    od -An -tx1 -N32 /dev/urandom | tr -d ' \n'
}

issue() {  # issue CN HOST...
    cn=$1
    shift
    [ -f "$DIR/$cn.pem" ] && [ -f "$DIR/$cn-key.pem" ] && return 0
    hosts=""
    for h in "$@" localhost 127.0.0.1; do
        hosts="$hosts --host $h"
    done
    # shellcheck disable=SC2086
    $BROOK certs issue "$cn" --dir "$DIR" $hosts >/dev/null
}

[ -f "$DIR/ca.pem" ] || $BROOK certs ca --dir "$DIR" >/dev/null
for i in 1 2 3; do
    issue "controller-$i" "controller-$i"
    issue "broker-10$i" "broker-$i"
    issue "broker-$i" "node-$i"
done
issue admin admin
[ -s "$DIR/quorum.secret" ] || random >"$DIR/quorum.secret"
[ -s "$DIR/admin.password" ] || random >"$DIR/admin.password"

for f in "$DIR"/*; do
    [ "$f" = "$DIR/ca-key.pem" ] || chmod 644 "$f"   # the CA key is never mounted: it stays 0600
done
echo "Wrote the compose secrets to $DIR (the Kafka super user is admin, its password is in $DIR/admin.password)."
