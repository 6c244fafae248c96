# The fhir-scheduler image: one image for the API (`serve`), the Celery worker and beat.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home app

# Install from a throwaway copy of the source so only the installed package is importable.
COPY pyproject.toml README.md /tmp/src/
COPY fhir_server /tmp/src/fhir_server
RUN pip install /tmp/src && rm -rf /tmp/src

WORKDIR /app
COPY capability /app/capability
COPY profiles /app/profiles
# ./data holds the SQLite file and embedded Celery queues when no external store is configured.
RUN mkdir -p /app/data && chown app:app /app/data

ENV FHIR_SCHEDULER_CAPABILITY_DIR=/app/capability \
    FHIR_SCHEDULER_PROFILES_DIR=/app/profiles \
    FHIR_SCHEDULER_DATA_DIR=/app/data

USER app
EXPOSE 8080

# slim has no curl; urlopen raises (exit 1) on a refused connection or a non-2xx answer.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]

ENTRYPOINT ["fhir-scheduler"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
