# placewatch services (ingest, rules, notify, api, migrate, simulate, ...): one image, the
# command picks the stage (ENTRYPOINT placewatch). Also holds examples/ (the demo webhook
# receiver, with standardwebhooks) and deploy/ (the teams file the compose setup applies).
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
# Every package in pyproject's [tool.setuptools] packages (tests/deploy checks the list).
COPY placewatch ./placewatch
COPY adapters ./adapters
COPY devices ./devices
COPY care ./care
COPY ingest ./ingest
COPY storage ./storage
COPY simulators ./simulators
COPY rules ./rules
COPY teams ./teams
COPY notify ./notify
COPY api ./api
COPY dashboards ./dashboards
# As scripts/setup-venv.sh: urllib3-future (grafana-client's niquests) built from source with
# URLLIB3_NO_OVERRIDE installs beside urllib3 instead of replacing it.
RUN URLLIB3_NO_OVERRIDE=1 pip install --no-binary urllib3-future . "standardwebhooks>=1.0,<2" \
    && useradd --system --no-create-home --shell /usr/sbin/nologin placewatch
COPY examples ./examples
COPY deploy ./deploy
USER placewatch
ENTRYPOINT ["placewatch"]
CMD ["--help"]
