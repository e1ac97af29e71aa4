#!/usr/bin/env bash
# Starts, stops and shows the five OMS services, the ops console (and local SMTP and SMS sinks) as background
# processes.
#   deploy/local/services.sh start|stop|status
# Logs: .local/logs/<service>.log (JSON lines). Settings come from the environment (see README).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="${OMS_STATE_DIR:-$ROOT/.local}"
RUN="$STATE/run"
LOGS="$STATE/logs"
VENV="$ROOT/.venv/bin"
SERVICES=(order-service inventory-service payment-service fulfilment-service notification-service)
# Each service's HTTP port (API, health, metrics): 8000 + its place in SERVICES, from HTTP_PORT_BASE.
HTTP_PORT_BASE="${HTTP_PORT_BASE:-8000}"
# The ops console (console/): http://127.0.0.1:$CONSOLE_PORT/, talking to the services' HTTP APIs.
CONSOLE_PORT="${CONSOLE_PORT:-8080}"
SMTP_PORT="${SMTP_PORT:-1025}"
SMS_PORT="${SMS_PORT:-1026}"
SMS_PROVIDER_URL="${SMS_PROVIDER_URL:-http://127.0.0.1:$SMS_PORT}"
# Local-only: the smssink reports each SMS delivered to notification-service with this token.
SMS_WEBHOOK_TOKEN="${SMS_WEBHOOK_TOKEN:-local-sms-webhook-token-0123456789}"
# Local-only: webhook subscriptions may point at 127.0.0.1 and plain http (refused by default).
WEBHOOK_ALLOW_PRIVATE_TARGETS="${WEBHOOK_ALLOW_PRIVATE_TARGETS:-true}"
export SMTP_PORT SMS_PROVIDER_URL SMS_WEBHOOK_TOKEN WEBHOOK_ALLOW_PRIVATE_TARGETS LOG_FORMAT="${LOG_FORMAT:-json}"
# Local-only credentials (never use these anywhere else): an ops key for the demo, bench and you,
# one key per sales channel, and a warehouse and a carrier key for fulfilment-service's API.
OMS_API_KEY="${OMS_API_KEY:-local-ops-key-0123456789}"
export OMS_API_KEY
if [[ -z "${API_KEYS:-}" ]]; then
  API_KEYS=$(printf '[{"name": "local-ops", "key": "%s", "role": "ops"}, {"name": "local-web", "key": "local-web-key-0123456789", "role": "channel", "channel": "web"}, {"name": "local-marketplace", "key": "local-marketplace-key-0123456789", "role": "channel", "channel": "marketplace"}, {"name": "local-warehouse", "key": "local-warehouse-key-0123456789", "role": "warehouse"}, {"name": "local-carrier", "key": "local-carrier-key-0123456789", "role": "carrier"}]' "$OMS_API_KEY")
fi
export API_KEYS
export TRACKING_TOKEN_SECRET="${TRACKING_TOKEN_SECRET:-local-tracking-secret-0123456789}"

# The Kafka client settings of the broker infra.sh runs (with KAFKA_SECURITY=sasl_ssl: SASL_SSL, the SCRAM
# user and the local CA, see deploy/local/README.md); a setting already in the environment wins.
while IFS='=' read -r name value; do
  case "$name" in KAFKA_*) [[ -n "${!name:-}" ]] || export "$name=$value" ;; esac
done < <(bash "$ROOT/deploy/local/infra.sh" env)

mkdir -p "$RUN" "$LOGS"

alive() { [[ -f "$RUN/$1.pid" ]] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

launch() {  # name, command...
  local name="$1"; shift
  if alive "$name"; then echo "  $name already running (pid $(cat "$RUN/$name.pid"))"; return; fi
  echo "===== $(date -u +%FT%TZ) start =====" >>"$LOGS/$name.log"
  # `&` on the command alone (not on a `cd && ...` list), so $! is the service itself.
  (
    cd "$ROOT" || exit 1
    nohup "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
    echo $! >"$RUN/$name.pid"
  )
}

port_of() {
  local i
  for i in "${!SERVICES[@]}"; do [[ ${SERVICES[$i]} == "$1" ]] && echo $((HTTP_PORT_BASE + i)); done
}

SMS_STATUS_CALLBACK_URL="${SMS_STATUS_CALLBACK_URL:-http://127.0.0.1:$(port_of notification-service)/webhooks/sms/status}"
export SMS_STATUS_CALLBACK_URL

started_count() {
  local n
  n=$(grep -c '"message": "service started"' "$LOGS/$1.log" 2>/dev/null) || true
  echo "${n:-0}"
}

# A service that is slow to start (its broker or database still recovering: it waits for them, and its
# /health/ready says on what) is waited for, and told so every STATUS_EVERY_S; one that exited is started
# again after a back-off that doubles from 1 s up to RESTART_BACKOFF_MAX_S. Nothing gives up unless
# START_TIMEOUT_S (0: never) passes.
START_TIMEOUT_S="${START_TIMEOUT_S:-0}"
RESTART_BACKOFF_MAX_S="${RESTART_BACKOFF_MAX_S:-30}"
STATUS_EVERY_S=15

readiness_of() {
  "$VENV/python" - "http://127.0.0.1:$(port_of "$1")/health/ready" <<'PY' 2>/dev/null || echo "no answer"
import json, sys, urllib.error, urllib.request
try:
    body = json.load(urllib.request.urlopen(sys.argv[1], timeout=2))
except urllib.error.HTTPError as exc:
    body = json.load(exc)
print("; ".join(f"{k}: {v}" for k, v in body.get("problems", {}).items()) or "ready")
PY
}

wait_started() {  # service, 'service started' lines its log held before this start
  local svc="$1" before="$2" began=$SECONDS backoff=1 restarts=0 next_status=$((SECONDS + STATUS_EVERY_S))
  until (( $(started_count "$svc") > before )); do
    if ! alive "$svc"; then
      restarts=$((restarts + 1))
      echo "  $svc exited (restart $restarts in ${backoff} s); last lines of its log:"; tail -n 5 "$LOGS/$svc.log"
      sleep "$backoff"; backoff=$(( backoff * 2 > RESTART_BACKOFF_MAX_S ? RESTART_BACKOFF_MAX_S : backoff * 2 ))
      before=$(started_count "$svc")
      HTTP_PORT=$(port_of "$svc") launch "$svc" "$VENV/$svc"
    fi
    if (( START_TIMEOUT_S > 0 && SECONDS - began > START_TIMEOUT_S )); then
      echo "  $svc not started after $START_TIMEOUT_S s"; tail -n 20 "$LOGS/$svc.log"; exit 1
    fi
    if (( SECONDS >= next_status )); then
      echo "  $svc still starting after $((SECONDS - began)) s: $(readiness_of "$svc")"
      next_status=$((SECONDS + STATUS_EVERY_S))
    fi
    sleep 0.5
  done
  echo "  $svc up (pid $(cat "$RUN/$svc.pid"))$( (( restarts > 0 )) && echo ", after $restarts restart(s)")"
}

start() {
  echo "starting the OMS services (logs in ${LOGS#"$ROOT"/})"
  # The venv's programs directly (not `uv run`), so the pid file holds the process that gets SIGTERM.
  launch mailsink "$VENV/python" deploy/local/mailsink.py --dir "$STATE/mail" --port "$SMTP_PORT"
  launch smssink "$VENV/python" deploy/local/smssink.py --dir "$STATE/sms" --port "$SMS_PORT" \
    --webhook-token "$SMS_WEBHOOK_TOKEN" --report-after 1
  declare -A before
  for svc in "${SERVICES[@]}"; do
    before[$svc]=$(started_count "$svc")
    if alive "$svc"; then before[$svc]=-1; fi
    HTTP_PORT=$(port_of "$svc") launch "$svc" "$VENV/$svc"
  done
  for svc in "${SERVICES[@]}"; do
    [[ ${before[$svc]} == -1 ]] && continue
    wait_started "$svc" "${before[$svc]}"
  done
  start_console
  for svc in "${SERVICES[@]}"; do
    echo "  $svc HTTP: http://127.0.0.1:$(port_of "$svc")"
  done
  echo "  ops console: http://127.0.0.1:$CONSOLE_PORT/ (sign in with an ops key, e.g. $OMS_API_KEY)"
  echo "  order-service API docs: http://127.0.0.1:$(port_of order-service)/docs"
  echo "  emails land in ${STATE#"$ROOT"/}/mail, text messages in ${STATE#"$ROOT"/}/sms"
}

start_console() {
  local url
  if ! alive console; then
    ORDER_SERVICE_URL="http://127.0.0.1:$(port_of order-service)" \
      INVENTORY_SERVICE_URL="http://127.0.0.1:$(port_of inventory-service)" \
      PAYMENT_SERVICE_URL="http://127.0.0.1:$(port_of payment-service)" \
      FULFILMENT_SERVICE_URL="http://127.0.0.1:$(port_of fulfilment-service)" \
      NOTIFICATION_SERVICE_URL="http://127.0.0.1:$(port_of notification-service)" \
      CONSOLE_PORT="$CONSOLE_PORT" launch console "$VENV/oms-console"
  fi
  url="http://127.0.0.1:$CONSOLE_PORT/health"
  for _ in $(seq 1 120); do
    if "$VENV/python" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)" "$url" 2>/dev/null; then
      echo "  console up (pid $(cat "$RUN/console.pid"))"; return
    fi
    if ! alive console; then echo "  console exited; last lines of its log:"; tail -n 20 "$LOGS/console.log"; exit 1; fi
    sleep 0.5
  done
  echo "  console not answering after 60 s"; tail -n 20 "$LOGS/console.log"; exit 1
}

stop() {
  for name in console "${SERVICES[@]}" mailsink smssink; do
    if alive "$name"; then
      local pid; pid=$(cat "$RUN/$name.pid")
      # On SIGTERM a service finishes the message in hand, commits, and exits.
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        echo "  $name did not stop within 30 s: killed"
      else
        echo "  $name stopped"
      fi
    fi
    rm -f "$RUN/$name.pid"
  done
}

status() {
  for name in "${SERVICES[@]}" console mailsink smssink; do
    if alive "$name"; then echo "$name up (pid $(cat "$RUN/$name.pid"))"; else echo "$name down"; fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
