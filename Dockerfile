# payfeed: multi-stage, non-root; runs `payfeed serve` against PAYFEED_DATABASE_URL.
# The source tree lives at /opt/payfeed in both stages (an editable install), so
# the Alembic migrations sit beside the packages as in a checkout.
FROM python:3.11-slim AS build
WORKDIR /opt/payfeed
COPY pyproject.toml README.md ./
COPY app app
COPY store store
COPY ingest ingest
COPY campaign campaign
COPY demo demo
COPY schemas schemas
COPY migrations migrations
RUN python -m venv /venv && /venv/bin/pip install --no-cache-dir -e .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 payfeed
COPY --from=build /venv /venv
COPY --from=build /opt/payfeed /opt/payfeed
ENV PATH=/venv/bin:$PATH \
    PAYFEED_HOME=/home/payfeed/.payfeed
USER payfeed
WORKDIR /home/payfeed
EXPOSE 8000
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["payfeed", "serve", "--host", "0.0.0.0", "--port", "8000"]
