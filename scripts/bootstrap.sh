#!/usr/bin/env bash
# Installs and starts everything `make run` and `make test` need on a Debian machine; safe to re-run.
# `bootstrap.sh venv`: the packages and .venv only, no servers started (`make test-unit`).
set -euo pipefail
cd "$(dirname "$0")/.."

MYSQL_DB=${MYSQL_DB:-auth}
MYSQL_USER=${MYSQL_USER:-auth_user}
MYSQL_PASSWORD=${MYSQL_PASSWORD:-auth_password}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
VENV=.venv
WAIT_SECONDS=${BOOTSTRAP_WAIT_SECONDS:-90}

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

log() { echo "bootstrap: $*"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local name=$1 port=$2 waited=0
  until port_open "$port"; do
    if [ "$waited" -ge "$WAIT_SECONDS" ]; then
      log "$name did not listen on 127.0.0.1:$port within ${WAIT_SECONDS}s" >&2
      exit 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
}

install_missing_packages() {
  local missing=()
  command -v gcc >/dev/null || missing+=(gcc)
  command -v pkg-config >/dev/null || missing+=(pkg-config)
  if ! pkg-config --exists libmariadb 2>/dev/null && ! pkg-config --exists mysqlclient 2>/dev/null; then
    missing+=(libmariadb-dev)
  fi
  [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
  # mariadb and mariadb-dump: `python -m ops backup | verify-backup | restore`
  { command -v mysql && command -v mariadb && command -v mariadb-dump; } >/dev/null \
    || missing+=(mariadb-client)
  command -v rabbitmq-server >/dev/null || [ -x /usr/sbin/rabbitmq-server ] || missing+=(rabbitmq-server)
  command -v ffprobe >/dev/null || missing+=(ffmpeg)
  command -v promtool >/dev/null || missing+=(prometheus)  # promtool: the alert rules' tests
  # a real Pushgateway: the backup Job's metrics, scraped and alerted on in the tests
  [ -x /usr/bin/prometheus-pushgateway ] || missing+=(prometheus-pushgateway)
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
  if [ "${#missing[@]}" -eq 0 ]; then
    return
  fi
  log "installing ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  local out
  out=$(mktemp)
  if ! $SUDO env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}" >"$out" 2>&1; then
    cat "$out" >&2
    rm -f "$out"
    log "apt-get install failed" >&2
    exit 1
  fi
  rm -f "$out"
}

start_mariadb() {
  if port_open 3306; then return; fi
  log "starting MariaDB"
  $SUDO mkdir -p /run/mysqld
  $SUDO chown mysql:mysql /run/mysqld 2>/dev/null || true
  $SUDO start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_port MariaDB 3306
}

start_rabbitmq() {
  if port_open 5672; then return; fi
  log "starting RabbitMQ"
  $SUDO rabbitmq-server -detached
  wait_port RabbitMQ 5672
}

create_auth_database() {
  log "ensuring MySQL database '$MYSQL_DB' and user '$MYSQL_USER'"
  local pw=${MYSQL_PASSWORD//\'/\'\'}
  local sql="CREATE DATABASE IF NOT EXISTS \`$MYSQL_DB\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
  local host
  for host in localhost 127.0.0.1; do
    sql+="CREATE USER IF NOT EXISTS '$MYSQL_USER'@'$host' IDENTIFIED BY '$pw';"
    sql+="ALTER USER '$MYSQL_USER'@'$host' IDENTIFIED BY '$pw';"
    sql+="GRANT ALL PRIVILEGES ON \`$MYSQL_DB\`.* TO '$MYSQL_USER'@'$host';"
    # the scratch databases of `python -m ops verify-backup`'s trial restore
    sql+="GRANT ALL PRIVILEGES ON \`${MYSQL_DB}\\_verify\\_%\`.* TO '$MYSQL_USER'@'$host';"
  done
  mysql -uroot -h127.0.0.1 -P3306 -e "$sql"
}

requirements_digest() {
  {
    "$PYTHON" -V
    cat requirements-dev.txt src/*/requirements.txt pyproject.toml
  } | sha256sum | cut -d' ' -f1
}

create_venv() {
  local stamp=$VENV/.requirements.sha256 digest
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV"
  fi
  digest=$(requirements_digest)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ]; then
    return
  fi
  log "installing Python requirements and the services (src/, editable) into $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements-dev.txt
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e .
  echo "$digest" >"$stamp"
}

install_missing_packages
# the page's tus-js-client (resumable uploads), from npm; without it the page uses POST /upload
scripts/vendor-js.sh || log "tus-js-client not vendored: the page will upload with POST /upload only"
if [ "${1:-}" = venv ]; then
  create_venv
  log "ready (venv only)"
  exit 0
fi
start_mariadb
start_rabbitmq
create_auth_database
create_venv
log "ready"
