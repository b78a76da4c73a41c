# One image for every process of the portal: the nameko services, the gateway, the citizen
# web portal (python -m portal) and the one-shot migrate + seed job. docker-compose.yml picks
# the process with `command:`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# DejaVu Sans: a Unicode TrueType font for the Vietnamese text of payment receipts (PDF).
RUN apt-get update && apt-get install -y --no-install-recommends fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

# Dependencies first (pinned in pyproject.toml), so code changes do not reinstall them.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
    > /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt

# The AsyncAPI viewer of /docs/events (npm @asyncapi/react-component): deploy/docs_assets.py
# takes its tarball from the npm registry (straight over HTTPS: this image has no Node or npm),
# checks the pinned sha512 and keeps only the files the gateway serves. Nothing is fetched at
# run time; Swagger UI of /docs comes with the Python dependencies above.
COPY deploy/docs_assets.py /tmp/docs_assets.py
RUN python /tmp/docs_assets.py --dest /app/.assets/docs
ENV DOCS_ASSETS_DIR=/app/.assets/docs

COPY portal_common ./portal_common
COPY services ./services
COPY gateway ./gateway
COPY deploy ./deploy
COPY bench ./bench
COPY portal ./portal
RUN pip install --no-deps . \
    && useradd --system --uid 10001 --home-dir /app portal \
    && chown -R portal /app

USER portal

# Services listen on 0.0.0.0 inside the container; the gateway on GATEWAY_PORT, every service's
# /metrics, /health and /ready on METRICS_PORT (set per service in docker-compose.yml).
ENV GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8000 \
    METRICS_HOST=0.0.0.0

EXPOSE 8000 8080 9101 9102 9103 9104 9105

CMD ["python", "-m", "nameko", "run", "--config", "gateway/config.yml", "gateway.service:GatewayService"]
