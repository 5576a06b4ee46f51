#!/usr/bin/env bash
# Installs the system packages the local stack needs, only when they are missing:
# Java 17+ (the Kafka broker), Maven (fetches the broker's jars from Maven Central),
# PostgreSQL 15 server binaries (the local cluster), Prometheus with promtool (one Debian
# package: the ops tests run a real Prometheus and check the alert rules with promtool). Safe
# to run again; does nothing when all are present. Needs root (or sudo) only when something
# must be installed.
set -euo pipefail

need=()
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
if ! command -v pg_ctl >/dev/null 2>&1 && [ ! -x /usr/lib/postgresql/15/bin/pg_ctl ]; then
  need+=(postgresql-15)
fi
command -v curl >/dev/null 2>&1 || need+=(curl)
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  need+=(prometheus)
fi

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

echo "bootstrap: installing ${need[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "bootstrap: need root or sudo to install ${need[*]}" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian's postgresql package starts a system cluster on 5432; ours runs on its own port and
# data folder, so the system one is left alone. Debian's prometheus package likewise may start
# a system Prometheus on 9090; the tests run their own on a free port and never touch it.
echo "bootstrap: done"
