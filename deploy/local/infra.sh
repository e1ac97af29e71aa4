#!/usr/bin/env bash
# Local infrastructure for the order management system, without Docker:
# a real single-node Apache Kafka (KRaft), a private PostgreSQL cluster and Redis, all on 127.0.0.1.
#
#   deploy/local/infra.sh start [kafka|pg|redis ...]   start (all by default); idempotent
#   deploy/local/infra.sh stop  [kafka|pg|redis ...]   stop (all by default); safe when nothing runs
#   deploy/local/infra.sh status                       up/down per component (exit 0 only if all are up)
#   deploy/local/infra.sh env [--export]               KEY=VALUE lines for the services
#   deploy/local/infra.sh kafka-class CLASS [ARGS...]  run a Kafka tool class on the cached classpath,
#                                                      e.g. org.apache.kafka.tools.TopicCommand --list ...
#
# State (jars, data, logs, pid files) lives in ${OMS_STATE_DIR:-<repo root>/.local}.
# Ports: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), PG_PORT (5433), REDIS_PORT (6379).
# KAFKA_SECURITY=sasl_ssl: the client listener is SASL_SSL (SCRAM-SHA-512 over TLS, a local CA), and
# `env` prints the client settings (KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*, KAFKA_SSL_CAFILE).
# Partitions of a topic created without a count: KAFKA_TOPIC_PARTITIONS (12).
# See deploy/local/README.md.
set -euo pipefail

# ---------------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------------
# The one place the Kafka version is pinned (deploy/local/kafka/pom.xml receives it as -Dkafka.version).
KAFKA_VERSION="4.1.1"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"

KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
PG_PORT="${PG_PORT:-5433}"
REDIS_PORT="${REDIS_PORT:-6379}"
# The broker's num.partitions, for a topic created without a count; the services create theirs with the
# same setting (KAFKA_TOPIC_PARTITIONS, default 12 as in oms_events.topics.DEFAULT_PARTITIONS).
KAFKA_TOPIC_PARTITIONS="${KAFKA_TOPIC_PARTITIONS:-12}"
# plaintext (the default) or sasl_ssl: how clients reach the broker (the KRaft controller listener stays
# PLAINTEXT on 127.0.0.1: only the broker itself talks to it).
KAFKA_SECURITY="${KAFKA_SECURITY:-plaintext}"
# The SCRAM user the clients (services, CLI, tests) authenticate as with sasl_ssl; the broker itself uses
# a user of its own (admin) between its listeners.
KAFKA_SASL_USER="${KAFKA_SASL_USER:-oms}"
# Where the Kafka jars are cached (a second state dir, such as the SASL_SSL integration test's, reuses them).
KAFKA_LIB_DIR="${KAFKA_LIB_DIR:-}"

KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
PG_START_TIMEOUT="${PG_START_TIMEOUT:-60}"
REDIS_START_TIMEOUT="${REDIS_START_TIMEOUT:-30}"
KAFKA_STOP_TIMEOUT=30

PG_APP_USER=oms
PG_APP_PASSWORD=oms
PG_APP_DB=oms

KAFKA_POM="$SCRIPT_DIR/kafka/pom.xml"
KAFKA_LOG4J="$SCRIPT_DIR/kafka/log4j2.xml"
KAFKA_TOOLS_LOG4J="$SCRIPT_DIR/kafka/log4j2-tools.xml"

# ---------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------
say() { printf '[infra] %s\n' "$*" >&2; }
die() { printf 'infra.sh: error: %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

check_port_var() {
  local name="$1" value="$2"
  if ! [[ "$value" =~ ^[0-9]+$ ]] || [ "$value" -lt 1 ] || [ "$value" -gt 65535 ]; then
    die "$name must be a TCP port number, got '$value'"
  fi
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
  timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# True when process $1 is alive and its command line contains $2.
pid_cmd_has() {
  local pid="$1" needle="$2"
  pid_alive "$pid" || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$needle"
}

read_pidfile() { if [ -s "$1" ]; then head -n1 "$1" | tr -dc '0-9'; fi; }

# Print the last lines of each given log file that exists.
show_logs() {
  local f
  for f in "$@"; do
    [ -s "$f" ] || continue
    printf -- '----- last 40 lines of %s -----\n' "$f" >&2
    tail -n 40 "$f" >&2
  done
  printf -- '-----\n' >&2
}

APT_UPDATED=0
apt_install() {
  is_root || die "missing $*; install it (Debian/Ubuntu: apt-get install $*) or run this script as root"
  command -v apt-get >/dev/null || die "missing $* and no apt-get to install it"
  if [ "$APT_UPDATED" -eq 0 ]; then
    say "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    APT_UPDATED=1
  fi
  say "apt-get install -y $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

init_state_dir() {
  STATE_DIR="${OMS_STATE_DIR:-$REPO_ROOT/.local}"
  mkdir -p "$STATE_DIR"
  STATE_DIR="$(cd "$STATE_DIR" && pwd)"

  K_DIR="$STATE_DIR/kafka"
  K_LIB="${KAFKA_LIB_DIR:-$K_DIR/lib}/$KAFKA_VERSION"
  K_LOGS="$K_DIR/logs"
  K_CONF="$K_DIR/server.properties"
  K_PIDFILE="$K_DIR/kafka.pid"
  K_PORTS="$K_DIR/ports"
  # The security the running broker was started with (env and status read it, not KAFKA_SECURITY).
  K_SECURITY_FILE="$K_DIR/security"
  K_TLS="$K_DIR/tls"
  K_CLIENT_PROPS="$K_TLS/client.properties"
  K_CREDENTIALS="$K_TLS/credentials.env"
  set_kafka_data_paths "$KAFKA_SECURITY"
  K_OUT="$K_LOGS/kafka.out"
  K_SERVER_LOG="$K_LOGS/server.log"

  PG_DIR="$STATE_DIR/pg"
  # A symlink when the cluster had to live elsewhere (see pg_relocate_if_unreachable).
  if [ -L "$PG_DIR" ]; then PG_DIR="$(readlink -f "$PG_DIR")"; fi
  set_pg_paths

  R_DIR="$STATE_DIR/redis"
  R_PIDFILE="$R_DIR/redis.pid"
  R_LOG="$R_DIR/redis.log"
  R_PORTFILE="$R_DIR/port"
}

# The storage of a sasl_ssl broker holds its SCRAM users (written when it is formatted): it lives apart
# from the plaintext one, so switching between the two never needs a reset.
set_kafka_data_paths() {
  if [ "$1" = sasl_ssl ]; then
    K_DATA="$K_DIR/data-sasl_ssl"; K_FORMATTED="$K_DIR/formatted-sasl_ssl.env"
  else
    K_DATA="$K_DIR/data"; K_FORMATTED="$K_DIR/formatted.env"
  fi
}

set_pg_paths() {
  PG_DATA="$PG_DIR/data"
  PG_SOCK="$PG_DIR/run"
  PG_LOGDIR="$PG_DIR/log"
  PG_LOG="$PG_LOGDIR/postgresql.log"
}

# Serialise start/stop runs that share one state dir. Every daemon is launched with fd 9 closed
# (`9>&-`): a daemon that inherited it would hold the lock for as long as it runs.
take_lock() {
  exec 9>"$STATE_DIR/.infra.lock"
  flock -w 300 9 || die "another infra.sh run holds $STATE_DIR/.infra.lock"
}

# ---------------------------------------------------------------------------------------------------
# Java / Maven / Kafka jars
# ---------------------------------------------------------------------------------------------------
JAVA=""
find_java() {
  [ -n "$JAVA" ] && return 0
  if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then
    JAVA="$JAVA_HOME/bin/java"
  elif command -v java >/dev/null; then
    JAVA="$(command -v java)"
  else
    apt_install openjdk-17-jre-headless
    JAVA="$(command -v java)"
  fi
  local ver major
  ver="$("$JAVA" -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')"
  major="${ver%%.*}"
  if ! [[ "$major" =~ ^[0-9]+$ ]] || [ "$major" -lt 17 ]; then
    die "Kafka $KAFKA_VERSION needs Java 17+, but $JAVA is '$ver' (set JAVA_HOME to a JDK 17+)"
  fi
}

kafka_fetch_jars() {
  local stamp
  stamp="kafka=$KAFKA_VERSION pom=$(sha256sum "$KAFKA_POM" | cut -c1-16)"
  if [ -f "$K_LIB/.complete" ] && [ "$(cat "$K_LIB/.complete")" = "$stamp" ]; then
    return 0
  fi
  # Never swap the jars under a running broker; they are refreshed at its next start.
  if [ -f "$K_LIB/.complete" ] && kafka_alive; then
    return 0
  fi
  command -v mvn >/dev/null || apt_install maven
  say "kafka: fetching Kafka $KAFKA_VERSION jars with Maven (first run only)"
  mkdir -p "$K_LOGS"
  rm -rf "$K_LIB" "$K_LIB.tmp"
  if ! mvn -q -B -f "$KAFKA_POM" dependency:copy-dependencies \
        -Dkafka.version="$KAFKA_VERSION" -DoutputDirectory="$K_LIB.tmp" >"$K_LOGS/mvn.log" 2>&1; then
    show_logs "$K_LOGS/mvn.log"
    die "kafka: Maven could not fetch the Kafka $KAFKA_VERSION jars (full output: $K_LOGS/mvn.log)"
  fi
  [ -f "$K_LIB.tmp/kafka_2.13-$KAFKA_VERSION.jar" ] || die "kafka: Maven ran but kafka_2.13-$KAFKA_VERSION.jar is missing"
  echo "$stamp" >"$K_LIB.tmp/.complete"
  mv "$K_LIB.tmp" "$K_LIB"
}

# Command line to run a Kafka class (tool) on the cached classpath with small-JVM settings.
KAFKA_TOOL=()
kafka_tool_cmd() {
  find_java
  KAFKA_TOOL=("$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$KAFKA_TOOLS_LOG4J" -cp "$K_LIB/*")
}
kafka_tool() {
  kafka_tool_cmd
  "${KAFKA_TOOL[@]}" "$@"
}

# ---------------------------------------------------------------------------------------------------
# Kafka
# ---------------------------------------------------------------------------------------------------
kafka_pid() { read_pidfile "$K_PIDFILE"; }

# Our broker process is alive (pid file + command line pointing at our config).
kafka_alive() { pid_cmd_has "$(kafka_pid)" "$K_CONF"; }

# The running broker's security (what it was started with), else the one asked for.
kafka_security() {
  if [ -s "$K_SECURITY_FILE" ] && kafka_alive; then cat "$K_SECURITY_FILE"; else echo "$KAFKA_SECURITY"; fi
}

kafka_port() { if [ -s "$K_PORTS" ] && kafka_alive; then cut -d' ' -f1 "$K_PORTS"; else echo "$KAFKA_PORT"; fi; }
kafka_controller_port() { if [ -s "$K_PORTS" ] && kafka_alive; then cut -d' ' -f2 "$K_PORTS"; else echo "$KAFKA_CONTROLLER_PORT"; fi; }

kafka_write_config() {
  mkdir -p "$K_DATA" "$K_LOGS"
  local listener=PLAINTEXT
  [ "$KAFKA_SECURITY" = sasl_ssl ] && listener=SASL_SSL
  cat >"$K_CONF" <<EOF
# Generated by deploy/local/infra.sh on every start: edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=$listener://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=$listener://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
inter.broker.listener.name=$listener
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,$listener:$listener
log.dirs=$K_DATA

# Single node: every internal topic has one replica.
num.partitions=$KAFKA_TOPIC_PARTITIONS
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

# Tests: no rebalance delay; the application creates its own topics.
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
EOF
  if [ "$KAFKA_SECURITY" = sasl_ssl ]; then
    # shellcheck disable=SC1090  # written by kafka_tls_setup
    . "$K_CREDENTIALS"
    cat >>"$K_CONF" <<EOF

# KAFKA_SECURITY=sasl_ssl: SCRAM-SHA-512 over TLS for clients and between the broker's own listeners.
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$KAFKA_ADMIN_PASSWORD";
ssl.keystore.type=PKCS12
ssl.keystore.location=$K_TLS/broker.p12
ssl.keystore.password=$KAFKA_KEYSTORE_PASSWORD
ssl.key.password=$KAFKA_KEYSTORE_PASSWORD
ssl.truststore.type=PEM
ssl.truststore.location=$K_TLS/ca.crt
ssl.endpoint.identification.algorithm=https
EOF
  fi
}

# KAFKA_SECURITY=sasl_ssl, once per state dir: a local CA, the broker's certificate (127.0.0.1 and
# localhost), random passwords for the SCRAM users and the keystore, and the properties Kafka's own tools
# need to connect. Kept across starts (the SCRAM users are in the formatted storage).
kafka_tls_setup() {
  [ -s "$K_CREDENTIALS" ] && [ -s "$K_TLS/broker.p12" ] && return 0
  command -v openssl >/dev/null || apt_install openssl
  say "kafka: creating a local CA, the broker's certificate and the SCRAM credentials in $K_TLS"
  rm -rf "$K_TLS"
  mkdir -p "$K_TLS" "$K_LOGS"
  chmod 700 "$K_TLS"
  local log="$K_LOGS/tls.log"
  {
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 825 -keyout "$K_TLS/ca.key" -out "$K_TLS/ca.crt" \
      -subj "/CN=OMS local Kafka CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -addext "subjectKeyIdentifier=hash"
    openssl req -newkey rsa:2048 -nodes -sha256 -keyout "$K_TLS/broker.key" -out "$K_TLS/broker.csr" \
      -subj "/CN=localhost"
    printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
      "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth,clientAuth" \
      "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid,issuer" >"$K_TLS/broker.ext"
    openssl x509 -req -sha256 -days 825 -in "$K_TLS/broker.csr" -CA "$K_TLS/ca.crt" -CAkey "$K_TLS/ca.key" \
      -CAcreateserial -extfile "$K_TLS/broker.ext" -out "$K_TLS/broker.crt"
  } >"$log" 2>&1 || { show_logs "$log"; die "kafka: openssl could not create the certificates"; }
  local keystore_password admin_password client_password
  keystore_password="$(openssl rand -hex 16)"
  admin_password="$(openssl rand -hex 16)"
  client_password="$(openssl rand -hex 16)"
  openssl pkcs12 -export -in "$K_TLS/broker.crt" -inkey "$K_TLS/broker.key" -certfile "$K_TLS/ca.crt" \
    -name broker -out "$K_TLS/broker.p12" -passout "pass:$keystore_password" >>"$log" 2>&1 \
    || { show_logs "$log"; die "kafka: openssl could not write the broker's keystore"; }
  (
    umask 077
    printf 'KAFKA_KEYSTORE_PASSWORD=%s\nKAFKA_ADMIN_PASSWORD=%s\nKAFKA_CLIENT_USER=%s\nKAFKA_CLIENT_PASSWORD=%s\n' \
      "$keystore_password" "$admin_password" "$KAFKA_SASL_USER" "$client_password" >"$K_CREDENTIALS"
    cat >"$K_CLIENT_PROPS" <<EOF
# Kafka's own tools over SASL_SSL (--command-config / --config), as user $KAFKA_SASL_USER.
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$KAFKA_SASL_USER" password="$client_password";
ssl.truststore.type=PEM
ssl.truststore.location=$K_TLS/ca.crt
EOF
  )
}

kafka_format_if_needed() {
  if [ -f "$K_DATA/meta.properties" ]; then
    local formatted_cport=""
    [ -f "$K_FORMATTED" ] && formatted_cport="$(sed -n 's/^controller_port=//p' "$K_FORMATTED")"
    if [ -n "$formatted_cport" ] && [ "$formatted_cport" != "$KAFKA_CONTROLLER_PORT" ]; then
      die "kafka: storage in $K_DATA was formatted with controller port $formatted_cport, not $KAFKA_CONTROLLER_PORT. Use KAFKA_CONTROLLER_PORT=$formatted_cport, or reset Kafka: $0 stop kafka && rm -rf '$K_DATA' '$K_FORMATTED'"
    fi
    return 0
  fi
  local cluster_id
  cluster_id="$(kafka_tool kafka.tools.StorageTool random-uuid 2>>"$K_LOGS/format.log")" \
    || { show_logs "$K_LOGS/format.log"; die "kafka: StorageTool random-uuid failed"; }
  local scram=()
  if [ "$KAFKA_SECURITY" = sasl_ssl ]; then
    # shellcheck disable=SC1090
    . "$K_CREDENTIALS"
    # KRaft has no ZooKeeper to add users to before the first start: they are written into the storage.
    scram=(--add-scram "SCRAM-SHA-512=[name=admin,password=$KAFKA_ADMIN_PASSWORD]"
      --add-scram "SCRAM-SHA-512=[name=$KAFKA_CLIENT_USER,password=$KAFKA_CLIENT_PASSWORD]")
  fi
  say "kafka: formatting storage (cluster id $cluster_id, standalone KRaft controller, $KAFKA_SECURITY)"
  if ! kafka_tool kafka.tools.StorageTool format -t "$cluster_id" -c "$K_CONF" --standalone "${scram[@]}" \
        >>"$K_LOGS/format.log" 2>&1; then
    show_logs "$K_LOGS/format.log"
    die "kafka: formatting the storage failed"
  fi
  printf 'cluster_id=%s\ncontroller_port=%s\nkafka_version=%s\n' \
    "$cluster_id" "$KAFKA_CONTROLLER_PORT" "$KAFKA_VERSION" >"$K_FORMATTED"
}

KAFKA_LAUNCHED=0
KAFKA_LOG_OFFSET=0

# Start the broker process (does not wait for readiness; see kafka_wait).
kafka_launch() {
  KAFKA_LAUNCHED=0
  if kafka_alive; then
    return 0
  fi
  rm -f "$K_PIDFILE"
  local p
  for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    if port_open "$p"; then
      die "kafka: port 127.0.0.1:$p is already in use by a process this script did not start. Stop it or choose other ports (KAFKA_PORT / KAFKA_CONTROLLER_PORT)."
    fi
  done
  find_java
  kafka_fetch_jars
  if [ "$KAFKA_SECURITY" = sasl_ssl ]; then kafka_tls_setup; fi
  kafka_write_config
  kafka_format_if_needed

  KAFKA_LOG_OFFSET="$(stat -c %s "$K_SERVER_LOG" 2>/dev/null || echo 0)"
  local launcher=()
  command -v setsid >/dev/null && launcher=(setsid)
  say "kafka: starting Kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT ($KAFKA_SECURITY; controller 127.0.0.1:$KAFKA_CONTROLLER_PORT)"
  # shellcheck disable=SC2086  # KAFKA_HEAP_OPTS is a list of JVM flags
  nohup "${launcher[@]}" "$JAVA" $KAFKA_HEAP_OPTS \
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    -Dkafka.logs.dir="$K_LOGS" -Dlog4j2.configurationFile="$KAFKA_LOG4J" \
    -cp "$K_LIB/*" kafka.Kafka "$K_CONF" >"$K_OUT" 2>&1 </dev/null 9>&- &
  echo $! >"$K_PIDFILE"
  echo "$KAFKA_PORT $KAFKA_CONTROLLER_PORT" >"$K_PORTS"
  echo "$KAFKA_SECURITY" >"$K_SECURITY_FILE"
  KAFKA_LAUNCHED=1
}

kafka_fail() {
  if [ "$KAFKA_LAUNCHED" -eq 1 ]; then
    # Only what this launch wrote: server.log also holds earlier runs.
    printf -- '----- last 40 lines of %s written by this start -----\n' "$K_SERVER_LOG" >&2
    tail -c +"$((KAFKA_LOG_OFFSET + 1))" "$K_SERVER_LOG" 2>/dev/null | tail -n 40 >&2 || true
    show_logs "$K_OUT"
  else
    show_logs "$K_SERVER_LOG" "$K_OUT"
  fi
  die "kafka: $*"
}

# Wait until the broker answers a metadata request.
kafka_wait() {
  local port start deadline
  port="$(kafka_port)"
  start=$SECONDS
  deadline=$((SECONDS + KAFKA_START_TIMEOUT))
  if [ "$KAFKA_LAUNCHED" -eq 1 ]; then
    # Fresh start: wait for the broker's own "started" line, then the port.
    until [ -f "$K_SERVER_LOG" ] && tail -c +"$((KAFKA_LOG_OFFSET + 1))" "$K_SERVER_LOG" | grep -q 'Kafka Server started' \
          && port_open "$port"; do
      kafka_alive || kafka_fail "the broker process exited during startup"
      [ $SECONDS -lt $deadline ] || kafka_fail "not started after ${KAFKA_START_TIMEOUT}s (KAFKA_START_TIMEOUT); the process (pid $(kafka_pid)) is left running: '$0 start kafka' waits for it again, '$0 stop kafka' stops it"
      sleep 0.5
    done
  else
    until port_open "$port"; do
      kafka_alive || kafka_fail "the broker process exited during startup"
      [ $SECONDS -lt $deadline ] || kafka_fail "port $port not open after ${KAFKA_START_TIMEOUT}s"
      sleep 0.5
    done
  fi
  # A real metadata request (DescribeCluster) with Kafka's own admin client.
  local remaining=$((deadline - SECONDS)) out
  [ $remaining -gt 15 ] || remaining=15
  kafka_tool_cmd
  local auth=()
  [ "$(kafka_security)" = sasl_ssl ] && auth=(--config "$K_CLIENT_PROPS")
  if ! out="$(timeout "$remaining" "${KAFKA_TOOL[@]}" org.apache.kafka.tools.ClusterTool cluster-id \
                --bootstrap-server "127.0.0.1:$port" "${auth[@]}" 2>&1)"; then
    echo "$out" >&2
    kafka_fail "the broker does not answer a metadata request on 127.0.0.1:$port"
  fi
  say "kafka: ready after $((SECONDS - start))s (${out//$'\n'/ })"
}

kafka_stop() {
  local pid
  pid="$(kafka_pid)"
  if ! kafka_alive; then
    rm -f "$K_PIDFILE"
    say "kafka: not running"
    return 0
  fi
  say "kafka: stopping (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
  while pid_alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.5; done
  if pid_alive "$pid"; then
    say "kafka: still running after ${KAFKA_STOP_TIMEOUT}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while pid_alive "$pid"; do sleep 0.2; done
  fi
  rm -f "$K_PIDFILE"
  say "kafka: stopped"
}

# ---------------------------------------------------------------------------------------------------
# PostgreSQL (a private cluster; PostgreSQL refuses to run as root, so as root it runs as 'postgres')
# ---------------------------------------------------------------------------------------------------
# Highest /usr/lib/postgresql/<major>/bin that has initdb (Debian layout), or nothing.
newest_pg_bindir() {
  local d best=""
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] || continue
    if [ -z "$best" ] || [ "$(basename "$(dirname "$d")")" -gt "$(basename "$(dirname "$best")")" ] 2>/dev/null; then
      best="$d"
    fi
  done
  echo "$best"
}

PG_BIN=""
find_pg_bin() {
  [ -n "$PG_BIN" ] && return 0
  local cand="" d
  # An existing cluster must be run by its own major version.
  if [ -f "$PG_DATA/PG_VERSION" ]; then
    d="/usr/lib/postgresql/$(cat "$PG_DATA/PG_VERSION")/bin"
    [ -x "$d/initdb" ] && cand="$d"
  fi
  if [ -z "$cand" ] && command -v pg_config >/dev/null; then
    d="$(pg_config --bindir 2>/dev/null || true)"
    [ -n "$d" ] && [ -x "$d/initdb" ] && cand="$d"
  fi
  if [ -z "$cand" ]; then
    d="$(newest_pg_bindir)"
    [ -n "$d" ] && [ -x "$d/initdb" ] && cand="$d"
  fi
  if [ -z "$cand" ]; then
    apt_install postgresql
    d="$(newest_pg_bindir)"
    [ -n "$d" ] && [ -x "$d/initdb" ] && cand="$d"
  fi
  [ -n "$cand" ] || die "pg: PostgreSQL server binaries (initdb, pg_ctl) not found"
  if [ -f "$PG_DATA/PG_VERSION" ] && [ "$("$cand/postgres" --version | grep -oE '[0-9]+' | head -n1)" != "$(cat "$PG_DATA/PG_VERSION")" ]; then
    die "pg: $PG_DATA was created by PostgreSQL $(cat "$PG_DATA/PG_VERSION") but only $cand is available. Reset it: $0 stop pg && rm -rf '$PG_DIR'"
  fi
  PG_BIN="$cand"
}

PG_OS_USER=""
pg_os_user() {
  [ -n "$PG_OS_USER" ] && return 0
  if is_root; then
    PG_OS_USER=postgres
    if ! id -u postgres >/dev/null 2>&1; then
      say "pg: creating system user 'postgres'"
      useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin postgres
    fi
  else
    PG_OS_USER="$(id -un)"
  fi
}

# Run a PostgreSQL server command as the OS user that owns the cluster.
pg_as_owner() {
  if is_root; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_pid() { read_pidfile "$PG_DATA/postmaster.pid"; }
pg_alive() { pid_cmd_has "$(pg_pid)" "$PG_DATA"; }
pg_port() { if pg_alive; then sed -n 4p "$PG_DATA/postmaster.pid" | tr -dc '0-9'; else echo "$PG_PORT"; fi; }

# As root the cluster runs as 'postgres', which must be able to reach the data directory. When the state
# dir sits below a directory it cannot search (a private home such as a root-only checkout), the cluster
# lives in a per-state-dir folder under ${TMPDIR:-/tmp} instead, linked from <state>/pg.
pg_relocate_if_unreachable() {
  is_root || return 0
  [ ! -e "$STATE_DIR/pg" ] || return 0
  runuser -u postgres -- test -x "$STATE_DIR" 2>/dev/null && return 0
  local alt
  alt="${TMPDIR:-/tmp}/oms-pg-$(printf '%s' "$STATE_DIR" | sha256sum | cut -c1-12)"
  if [ -d "$alt" ]; then
    # Left over from an earlier state dir of the same path that was reset: start afresh.
    PG_DIR="$alt"; set_pg_paths
    pg_alive && die "pg: an old cluster from $alt is still running (pid $(pg_pid)); stop it first"
    rm -rf "$alt"
  fi
  say "pg: the 'postgres' OS user cannot reach $STATE_DIR; the cluster lives in $alt (linked from $STATE_DIR/pg)"
  mkdir -p "$alt"
  ln -s "$alt" "$STATE_DIR/pg"
  PG_DIR="$alt"
  set_pg_paths
}

pg_init_if_needed() {
  pg_os_user
  pg_relocate_if_unreachable
  mkdir -p "$PG_DIR" "$PG_SOCK" "$PG_LOGDIR"
  if is_root; then
    chown -R postgres:postgres "$PG_DIR"
    runuser -u postgres -- test -w "$PG_DIR" \
      || die "pg: the 'postgres' OS user cannot write to $PG_DIR. Point OMS_STATE_DIR at a directory it can reach."
  fi
  chmod 700 "$PG_SOCK"
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    find_pg_bin
    say "pg: initdb into $PG_DATA"
    rm -rf "$PG_DATA"
    if ! pg_as_owner "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -A trust -E UTF8 --locale=C \
          >"$PG_LOGDIR/initdb.log" 2>&1; then
      show_logs "$PG_LOGDIR/initdb.log"
      die "pg: initdb failed"
    fi
    printf "\n# Local settings written by deploy/local/infra.sh on every start.\ninclude_if_exists = 'oms.conf'\n" \
      | pg_as_owner tee -a "$PG_DATA/postgresql.conf" >/dev/null
    pg_as_owner tee "$PG_DATA/pg_hba.conf" >/dev/null <<'EOF'
# Local development cluster (deploy/local/infra.sh): no passwords, loopback and own socket only.
# TYPE  DATABASE  USER  ADDRESS        METHOD
local   all       all                  trust
host    all       all   127.0.0.1/32   trust
EOF
  fi
  find_pg_bin
  pg_as_owner tee "$PG_DATA/oms.conf" >/dev/null <<EOF
# Generated by deploy/local/infra.sh on every start.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_SOCK'
max_connections = 200
shared_buffers = 128MB
EOF
}

pg_psql() {
  "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$(pg_port)" -U postgres -d postgres "$@"
}

pg_ensure_app_db() {
  pg_psql -c "DO \$\$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_APP_USER') THEN
        CREATE ROLE $PG_APP_USER LOGIN SUPERUSER PASSWORD '$PG_APP_PASSWORD';
      END IF;
    END \$\$;" >/dev/null
  if [ "$(pg_psql -Atc "SELECT 1 FROM pg_database WHERE datname = '$PG_APP_DB'")" != "1" ]; then
    say "pg: creating database $PG_APP_DB"
    pg_psql -c "CREATE DATABASE $PG_APP_DB OWNER $PG_APP_USER" >/dev/null
  fi
}

pg_wait() {
  local port deadline
  port="$(pg_port)"
  deadline=$((SECONDS + PG_START_TIMEOUT))
  until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port"; do
    pg_alive || { show_logs "$PG_LOG"; die "pg: the server exited during startup"; }
    [ $SECONDS -lt $deadline ] || { show_logs "$PG_LOG"; die "pg: not ready after ${PG_START_TIMEOUT}s"; }
    sleep 0.3
  done
}

pg_start() {
  if pg_alive; then
    find_pg_bin
    pg_wait
    pg_ensure_app_db
    say "pg: already running (pid $(pg_pid)) on 127.0.0.1:$(pg_port)"
    warn_port_differs pg PG_PORT "$(pg_port)" "$PG_PORT"
    return 0
  fi
  if port_open "$PG_PORT"; then
    die "pg: port 127.0.0.1:$PG_PORT is already in use by a process this script did not start. Stop it or choose another PG_PORT."
  fi
  pg_init_if_needed
  say "pg: starting PostgreSQL ($PG_BIN) on 127.0.0.1:$PG_PORT"
  local start=$SECONDS
  if ! pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$PG_START_TIMEOUT" -s start >/dev/null 2>&1 9>&-; then
    show_logs "$PG_LOG"
    die "pg: pg_ctl start failed"
  fi
  pg_wait
  pg_ensure_app_db
  say "pg: ready after $((SECONDS - start))s"
}

pg_stop() {
  if ! pg_alive; then
    say "pg: not running"
    return 0
  fi
  find_pg_bin
  say "pg: stopping (pid $(pg_pid))"
  if ! pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 -s stop; then
    show_logs "$PG_LOG"
    die "pg: pg_ctl stop failed"
  fi
  say "pg: stopped"
}

# ---------------------------------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------------------------------
redis_pid() { read_pidfile "$R_PIDFILE"; }
redis_alive() { pid_cmd_has "$(redis_pid)" "redis-server"; }
redis_port() { if [ -s "$R_PORTFILE" ] && redis_alive; then cat "$R_PORTFILE"; else echo "$REDIS_PORT"; fi; }

redis_wait() {
  local port deadline
  port="$(redis_port)"
  deadline=$((SECONDS + REDIS_START_TIMEOUT))
  until [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null || true)" = "PONG" ]; do
    redis_alive || { show_logs "$R_LOG"; die "redis: the server exited during startup"; }
    [ $SECONDS -lt $deadline ] || { show_logs "$R_LOG"; die "redis: no PONG after ${REDIS_START_TIMEOUT}s"; }
    sleep 0.2
  done
}

redis_start() {
  if redis_alive; then
    redis_wait
    say "redis: already running (pid $(redis_pid)) on 127.0.0.1:$(redis_port)"
    warn_port_differs redis REDIS_PORT "$(redis_port)" "$REDIS_PORT"
    return 0
  fi
  rm -f "$R_PIDFILE"
  if port_open "$REDIS_PORT"; then
    die "redis: port 127.0.0.1:$REDIS_PORT is already in use by a process this script did not start. Stop it or choose another REDIS_PORT."
  fi
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    apt_install redis-server
  fi
  mkdir -p "$R_DIR"
  say "redis: starting $(redis-server --version | awk '{print $3}' | tr -d 'v=') on 127.0.0.1:$REDIS_PORT"
  local start=$SECONDS
  if ! redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" \
        --pidfile "$R_PIDFILE" --logfile "$R_LOG" --dir "$R_DIR" \
        --save "" --appendonly no >/dev/null 2>&1 9>&-; then
    show_logs "$R_LOG"
    die "redis: redis-server failed to start"
  fi
  echo "$REDIS_PORT" >"$R_PORTFILE"
  # The daemon writes its pid file shortly after forking.
  local deadline=$((SECONDS + REDIS_START_TIMEOUT))
  until redis_alive; do
    [ $SECONDS -lt $deadline ] || { show_logs "$R_LOG"; die "redis: no running redis-server with pid file $R_PIDFILE"; }
    sleep 0.1
  done
  redis_wait
  say "redis: ready after $((SECONDS - start))s"
}

redis_stop() {
  local pid
  pid="$(redis_pid)"
  if ! redis_alive; then
    rm -f "$R_PIDFILE"
    say "redis: not running"
    return 0
  fi
  say "redis: stopping (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 15))
  while pid_alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
  if pid_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$R_PIDFILE"
  say "redis: stopped"
}

# ---------------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------------
print_env() {
  local prefix="${1:-}"
  echo "${prefix}KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$(kafka_port)"
  if [ "$(kafka_security)" = sasl_ssl ] && [ -s "$K_CREDENTIALS" ]; then
    # shellcheck disable=SC1090
    . "$K_CREDENTIALS"
    echo "${prefix}KAFKA_SECURITY_PROTOCOL=SASL_SSL"
    echo "${prefix}KAFKA_SASL_MECHANISM=SCRAM-SHA-512"
    echo "${prefix}KAFKA_SASL_USERNAME=$KAFKA_CLIENT_USER"
    echo "${prefix}KAFKA_SASL_PASSWORD=$KAFKA_CLIENT_PASSWORD"
    echo "${prefix}KAFKA_SSL_CAFILE=$(printf '%q' "$K_TLS/ca.crt")"
  fi
  echo "${prefix}DATABASE_URL=postgresql+asyncpg://$PG_APP_USER:$PG_APP_PASSWORD@127.0.0.1:$(pg_port)/$PG_APP_DB"
  echo "${prefix}REDIS_URL=redis://127.0.0.1:$(redis_port)/0"
}

# Expand "" / "all" into the component list and validate names.
COMPONENTS=()
parse_components() {
  COMPONENTS=()
  local c
  if [ $# -eq 0 ]; then set -- all; fi
  for c in "$@"; do
    case "$c" in
      all) COMPONENTS+=(kafka pg redis) ;;
      kafka) COMPONENTS+=(kafka) ;;
      pg|postgres|postgresql) COMPONENTS+=(pg) ;;
      redis) COMPONENTS+=(redis) ;;
      *) die "unknown component '$c' (expected kafka, pg, redis or all)" ;;
    esac
  done
}

# Warn when a component is already running on another port than the one asked for now.
warn_port_differs() {
  local name="$1" var="$2" running="$3" wanted="$4"
  [ "$running" = "$wanted" ] || say "$name: already running on port $running; $var=$wanted is ignored until it is stopped"
}

has_component() { local c; for c in "${COMPONENTS[@]}"; do [ "$c" = "$1" ] && return 0; done; return 1; }

cmd_start() {
  parse_components "$@"
  take_lock
  local t0=$SECONDS
  # Kafka's JVM takes longest to boot: launch it first, bring up PostgreSQL and Redis meanwhile.
  if has_component kafka; then kafka_launch; fi
  if has_component pg; then pg_start; fi
  if has_component redis; then redis_start; fi
  if has_component kafka; then
    if [ "$KAFKA_LAUNCHED" -eq 0 ] && port_open "$(kafka_port)"; then
      say "kafka: already running (pid $(kafka_pid)) on 127.0.0.1:$(kafka_port), $(kafka_security)"
      [ "$(kafka_security)" = "$KAFKA_SECURITY" ] \
        || say "kafka: running with $(kafka_security); KAFKA_SECURITY=$KAFKA_SECURITY is ignored until it is stopped"
      warn_port_differs kafka KAFKA_PORT "$(kafka_port)" "$KAFKA_PORT"
      warn_port_differs kafka KAFKA_CONTROLLER_PORT "$(kafka_controller_port)" "$KAFKA_CONTROLLER_PORT"
    else
      kafka_wait
    fi
  fi
  echo "Local infrastructure is up ($((SECONDS - t0))s; state in $STATE_DIR):"
  has_component kafka && echo "  kafka     127.0.0.1:$(kafka_port)  (Kafka $KAFKA_VERSION, $(kafka_security), KRaft controller 127.0.0.1:$(kafka_controller_port); log $K_SERVER_LOG)"
  if has_component kafka && [ "$(kafka_security)" = sasl_ssl ]; then
    echo "            Kafka's tools: kafka-class ... --command-config $K_CLIENT_PROPS (or --config)"
  fi
  has_component pg    && echo "  postgres  127.0.0.1:$(pg_port)  (database $PG_APP_DB, user $PG_APP_USER/$PG_APP_PASSWORD; log $PG_LOG)"
  has_component redis && echo "  redis     127.0.0.1:$(redis_port)  (log $R_LOG)"
  echo "Environment (also: $0 env):"
  print_env "  "
}

cmd_stop() {
  parse_components "$@"
  take_lock
  # Reverse order of dependency: nothing here depends on anything else, stop Kafka first (slowest).
  if has_component kafka; then kafka_stop; fi
  if has_component pg; then pg_stop; fi
  if has_component redis; then redis_stop; fi
}

cmd_status() {
  local all_up=0 line
  if kafka_alive && port_open "$(kafka_port)"; then
    line="up    127.0.0.1:$(kafka_port)  pid $(kafka_pid), Kafka $KAFKA_VERSION, $(kafka_security)"
  elif kafka_alive; then
    line="starting (pid $(kafka_pid), port $(kafka_port) not open yet)"; all_up=1
  else
    line="down"; all_up=1
  fi
  printf '%-9s %s\n' kafka "$line"
  if pg_alive && find_pg_bin && "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$(pg_port)"; then
    line="up    127.0.0.1:$(pg_port)  pid $(pg_pid)"
  else
    line="down"; all_up=1
  fi
  printf '%-9s %s\n' postgres "$line"
  if redis_alive && [ "$(redis-cli -h 127.0.0.1 -p "$(redis_port)" ping 2>/dev/null || true)" = "PONG" ]; then
    line="up    127.0.0.1:$(redis_port)  pid $(redis_pid)"
  else
    line="down"; all_up=1
  fi
  printf '%-9s %s\n' redis "$line"
  return $all_up
}

cmd_kafka_class() {
  [ $# -ge 1 ] || die "usage: $0 kafka-class MAIN_CLASS [ARGS...]"
  find_java
  kafka_fetch_jars
  kafka_tool "$@"
}

usage() {
  sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

main() {
  check_port_var KAFKA_PORT "$KAFKA_PORT"
  check_port_var KAFKA_CONTROLLER_PORT "$KAFKA_CONTROLLER_PORT"
  check_port_var PG_PORT "$PG_PORT"
  check_port_var REDIS_PORT "$REDIS_PORT"
  case "$KAFKA_SECURITY" in
    plaintext|sasl_ssl) ;;
    *) die "KAFKA_SECURITY must be plaintext or sasl_ssl, got '$KAFKA_SECURITY'" ;;
  esac
  [[ "$KAFKA_TOPIC_PARTITIONS" =~ ^[1-9][0-9]*$ ]] || die "KAFKA_TOPIC_PARTITIONS must be a positive number, got '$KAFKA_TOPIC_PARTITIONS'"
  local cmd="${1:-}"
  [ $# -gt 0 ] && shift
  case "$cmd" in
    start) init_state_dir; cmd_start "$@" ;;
    stop) init_state_dir; cmd_stop "$@" ;;
    status) init_state_dir; cmd_status ;;
    env)
      init_state_dir
      case "${1:-}" in
        "") print_env "" ;;
        --export) print_env "export " ;;
        *) die "usage: $0 env [--export]" ;;
      esac ;;
    kafka-class) init_state_dir; cmd_kafka_class "$@" ;;
    -h|--help|help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
