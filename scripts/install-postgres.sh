#!/usr/bin/env bash
# Installs Debian's postgresql when missing, starts a cluster, and creates the role and
# database the collector's PostgreSQL tests use (cli/tests/postgres.rs):
#
#     postgres://modelwatch:modelwatch@127.0.0.1:5432/modelwatch_test
#
# (override with MODELWATCH_TEST_POSTGRES). The role may create databases: each test makes
# its own, so tests run in parallel. Those tests say SKIPPED where no server answers, and
# fail under CI=true, where this script has run. Idempotent; as root, or with sudo.
set -euo pipefail
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
if ! command -v pg_lsclusters > /dev/null || [ -z "$(ls /usr/lib/postgresql/*/bin/postgres 2>/dev/null)" ]; then
    echo "installing Debian's postgresql"
    for attempt in 1 2; do
        $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
            --no-install-recommends postgresql > /dev/null && break
        echo "apt-get failed (attempt $attempt)"; sleep 10
    done
fi
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
# The package creates the cluster "main" (unless told not to); make one if it did not.
if ! pg_lsclusters -h | awk '{print $1, $2}' | grep -qx "$version main"; then
    $sudo pg_createcluster "$version" main
fi
# pg_ctlcluster, not `postgres` itself: the server refuses to run as root.
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $4}' | grep -q online; then
    $sudo pg_ctlcluster "$version" main start
fi
port=$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $3}')
psql_admin() { $sudo runuser -u postgres -- psql -p "$port" -v ON_ERROR_STOP=1 -qAt "$@"; }
for attempt in $(seq 1 30); do
    psql_admin -c 'SELECT 1' > /dev/null 2>&1 && break
    sleep 1
done
if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = 'modelwatch'")" != 1 ]; then
    psql_admin -c "CREATE ROLE modelwatch LOGIN CREATEDB PASSWORD 'modelwatch'"
fi
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = 'modelwatch_test'")" != 1 ]; then
    psql_admin -c "CREATE DATABASE modelwatch_test OWNER modelwatch"
fi
echo "postgresql $version: postgres://modelwatch:modelwatch@127.0.0.1:$port/modelwatch_test"
if [ "$port" != 5432 ]; then
    echo "the cluster listens on $port: export MODELWATCH_TEST_POSTGRES=postgres://modelwatch:modelwatch@127.0.0.1:$port/modelwatch_test"
fi
