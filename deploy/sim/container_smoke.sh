#!/usr/bin/env bash
# Container smoke test: build deploy/Dockerfile on a machine without a container registry,
# run the image as Kubernetes would (read-only root, non-root UID, no capabilities) against a
# throwaway PostgreSQL on 127.0.0.1, and check /readyz, an append and a clean SIGTERM.
#
#   sudo deploy/sim/container_smoke.sh        # from the repository root; needs root for podman
#
# Not part of CI: the first run debootstraps a base image (minutes) and pip downloads the
# wheel's dependencies from PyPI. Later runs reuse the base image.
#
# Why each unusual choice:
# - No registry: the base image is Debian bookworm made with debootstrap and `podman import`.
#   It stands in for python:3.11-slim-bookworm, so the REAL deploy/Dockerfile is built with
#   `--build-arg PYTHON_IMAGE=<local base>`; python-is-python3 and python3-pip give it the
#   `python` and `python -m pip` that the official image has in /usr/local.
# - `--runtime runc`: crun fails on this machine's hybrid (v1 + v2) cgroup layout.
# - Explicit nofile/nproc ulimits: the defaults podman derives from the host are not valid
#   for runc here; these are also the limits a pod gets, roughly.
# - `--network host` with ILJI_HOST=127.0.0.1: the server is reachable on loopback only, and
#   it reaches the host's PostgreSQL on 127.0.0.1 without a bridge network (none configured).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BASE_IMAGE=${BASE_IMAGE:-localhost/ilji-smoke-base:bookworm}
IMAGE=${IMAGE:-localhost/ilji:smoke}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
# A container may not raise a limit above this shell's hard limit (runc: "error setting
# rlimits ... operation not permitted"), so nofile is capped by it.
hard_nofile=$(ulimit -Hn)
[[ $hard_nofile == unlimited ]] && hard_nofile=65536
NOFILE=${NOFILE:-$(( hard_nofile > 65536 ? 65536 : hard_nofile ))}
NPROC=${NPROC:-1024}
ULIMITS=(--ulimit "nofile=$NOFILE:$NOFILE" --ulimit "nproc=$NPROC:$NPROC")
RUN_OPTS=(--runtime runc "${ULIMITS[@]}" --network host)
WORK=$(mktemp -d /tmp/ilji-smoke.XXXXXX)
CONTAINER=ilji-smoke-$$

say() { printf '\n== %s\n' "$*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

cleanup() {
    podman rm -f "$CONTAINER" >/dev/null 2>&1 || true
    if [[ -f $WORK/pg/postmaster.pid ]]; then
        runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/pg" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

for tool in podman runc debootstrap curl runuser; do
    command -v "$tool" >/dev/null || { echo "missing: $tool (apt-get install podman buildah runc debootstrap)"; exit 2; }
done
[[ -x $PG_BIN/postgres ]] || { echo "missing: PostgreSQL binaries in $PG_BIN"; exit 2; }

# -- 1. base image ------------------------------------------------------------------------
if podman image exists "$BASE_IMAGE"; then
    say "base image $BASE_IMAGE exists"
else
    say "debootstrap bookworm (minbase) into $WORK/rootfs"
    debootstrap --variant=minbase \
        --include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates \
        bookworm "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log"
    # What the slim image also leaves out: package caches and lists (apt-get update refills them).
    rm -rf "$WORK"/rootfs/var/cache/apt/archives/*.deb "$WORK"/rootfs/var/lib/apt/lists/*
    # A machine whose HTTPS goes through an inspecting proxy trusts extra CAs; pip inside the
    # build must trust them too, or PyPI fails with CERTIFICATE_VERIFY_FAILED. Only the
    # smoke base gets them (and PIP_CERT), never the production Dockerfile.
    if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "$WORK/rootfs/usr/local/share/ca-certificates/"
        chroot "$WORK/rootfs" update-ca-certificates >/dev/null
    fi
    tar -C "$WORK/rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' \
        --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' - "$BASE_IMAGE"
    rm -rf "$WORK/rootfs"
fi

# -- 2. the image, from the production Dockerfile -------------------------------------------
say "build $IMAGE from deploy/Dockerfile (PYTHON_IMAGE=$BASE_IMAGE)"
build_started=$(date +%s)
podman build --runtime runc --network host "${ULIMITS[@]}" \
    --build-arg "PYTHON_IMAGE=$BASE_IMAGE" \
    -f "$ROOT/deploy/Dockerfile" -t "$IMAGE" "$ROOT" >"$WORK/build.log" 2>&1 \
    || { tail -40 "$WORK/build.log"; exit 1; }
echo "built in $(($(date +%s) - build_started)) s"
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
echo "image size: $((size / 1000000)) MB ($size bytes); base: $(($(podman image inspect --format '{{.Size}}' "$BASE_IMAGE") / 1000000)) MB"

# -- 3. a throwaway PostgreSQL 15 on 127.0.0.1 ---------------------------------------------
PG_PORT=$(free_port)
PG_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
mkdir -p "$WORK/pg"
chown postgres: "$WORK" "$WORK/pg"
printf '%s\n' "$PG_PASSWORD" >"$WORK/pwfile"
chown postgres: "$WORK/pwfile"
say "PostgreSQL 15 on 127.0.0.1:$PG_PORT"
runuser -u postgres -- "$PG_BIN/initdb" -D "$WORK/pg" -U ilji --pwfile="$WORK/pwfile" \
    --auth-local=scram-sha-256 --auth-host=scram-sha-256 >"$WORK/initdb.log"
# listen_addresses=127.0.0.1 only; no unix socket needed (the container uses TCP).
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/pg" -w -l "$WORK/pg.log" \
    -o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=''" start >/dev/null
PGPASSWORD=$PG_PASSWORD "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U ilji ilji
DB_URL="postgresql://ilji:$PG_PASSWORD@127.0.0.1:$PG_PORT/ilji"

# The same hardening as deploy/k8s: read-only root, /tmp as the only writable place, the
# image's non-root UID, no capabilities, no privilege escalation.
HARDENED=(--read-only --tmpfs /tmp:rw,size=64m --user 10001:10001 --cap-drop ALL
          --security-opt no-new-privileges "${RUN_OPTS[@]}" -e "ILJI_DATABASE_URL=$DB_URL")

# -- 4. migrate (the Job), then serve (the Deployment) --------------------------------------
say "who and where the process runs"
podman run --rm "${HARDENED[@]}" --entrypoint /bin/sh "$IMAGE" -c \
    'id; touch /opt/ilji/probe 2>/dev/null && echo "root filesystem WRITABLE" || echo "root filesystem read-only"; touch /tmp/probe && echo "/tmp writable"; grep -E "open files|processes" /proc/self/limits'

say "ilji migrate"
podman run --rm "${HARDENED[@]}" "$IMAGE" migrate

API_PORT=$(free_port)
say "ilji serve on 127.0.0.1:$API_PORT"
started=$(date +%s.%N)
podman run -d --name "$CONTAINER" "${HARDENED[@]}" \
    -e ILJI_HOST=127.0.0.1 -e "ILJI_PORT=$API_PORT" "$IMAGE" serve >/dev/null
ready=""
for _ in $(seq 1 300); do
    if code=$(curl -s -o "$WORK/readyz" -w '%{http_code}' "http://127.0.0.1:$API_PORT/readyz") \
        && [[ $code == 200 ]]; then
        ready=$(date +%s.%N)
        break
    fi
    sleep 0.1
done
if [[ -z $ready ]]; then
    echo "not ready after 30 s"; podman logs "$CONTAINER" | tail -30; exit 1
fi
printf 'start time (podman run -> /readyz 200): %.2f s\n' "$(echo "$ready - $started" | bc)"
echo "GET /readyz -> 200 $(cat "$WORK/readyz")"

STREAM=smoke-$(date +%s)
EVENT_ID=$(python3 -c 'import uuid; print(uuid.uuid4())')
BODY="{\"expected_version\": \"no_stream\", \"events\": [{\"id\": \"$EVENT_ID\", \"type\": \"SmokeTested\", \"data\": {\"ok\": true}}]}"
echo "POST /v1/streams/$STREAM ->"
curl -s -i -X POST -H 'Content-Type: application/json' -d "$BODY" "http://127.0.0.1:$API_PORT/v1/streams/$STREAM" \
    | tr -d '\r' | grep -iv '^date:'
echo
echo "POST again (same event id: an idempotent retry) -> $(curl -s -o /dev/null -w '%{http_code}' \
    -X POST -H 'Content-Type: application/json' -d "$BODY" "http://127.0.0.1:$API_PORT/v1/streams/$STREAM")"
echo "GET /v1/streams/$STREAM -> $(curl -s "http://127.0.0.1:$API_PORT/v1/streams/$STREAM" | head -c 300)"

# -- 5. SIGTERM, as Kubernetes stops a pod: tini forwards it, the server drains and exits 0 ---
say "SIGTERM"
stop_started=$(date +%s.%N)
podman stop -t 20 "$CONTAINER" >/dev/null
printf 'exit code %s after %.2f s\n' "$(podman inspect --format '{{.State.ExitCode}}' "$CONTAINER")" \
    "$(echo "$(date +%s.%N) - $stop_started" | bc)"
echo "last log lines:"
podman logs "$CONTAINER" 2>&1 | tail -4
