# One image recipe for every OMS service and the ops console (SERVICE=oms-console). Build from the repo root:
#   docker build -f deploy/docker/service.Dockerfile --build-arg SERVICE=order-service -t oms/order-service .
FROM python:3.11-slim
ARG SERVICE
# tzdata: fulfilment's cut-off times are per warehouse time zone.
RUN test -n "$SERVICE" \
    && apt-get update && apt-get install -y --no-install-recommends tzdata && rm -rf /var/lib/apt/lists/* \
    && pip install --no-cache-dir uv==0.13.8 \
    && useradd --uid 10001 --create-home oms
WORKDIR /app
COPY pyproject.toml uv.lock ./
COPY libs libs
COPY services services
COPY tools tools
COPY console console
RUN uv sync --frozen --no-dev --package "$SERVICE" && chown -R oms /app
# The local SMS sink runs from notification-service's image (docker-compose.yml's smssink).
COPY deploy/local/smssink.py deploy/local/smssink.py
USER 10001
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1 LOG_FORMAT=json SERVICE=$SERVICE
CMD ["sh", "-c", "exec \"$SERVICE\""]
