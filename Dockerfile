# placewatch services (ingest, migrate, simulate, ...): one image, the command picks the stage.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY placewatch ./placewatch
COPY ingest ./ingest
COPY storage ./storage
COPY simulators ./simulators
RUN pip install --no-cache-dir . && useradd --system placewatch
USER placewatch
ENTRYPOINT ["placewatch"]
