# payfeed: multi-stage, non-root; `payfeed serve` against PAYFEED_DATABASE_URL.
#
# The base image is pinned by digest so that a rebuild gets the same system and
# Python, whatever the tag points to later. The digest is one that
# python:3.11-slim-bookworm had on Docker Hub; it was taken from a published
# reference, as no docker was at hand to look it up where this was written. To
# check it, or to move to a newer one (security fixes):
#   docker buildx imagetools inspect python:3.11-slim-bookworm
# and change PYTHON_IMAGE (or pass --build-arg PYTHON_IMAGE=...).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY requirements.lock pyproject.toml README.md ./
COPY app app
COPY store store
COPY ingest ingest
COPY campaign campaign
COPY demo demo
COPY schemas schemas
COPY migrations migrations
# A regular (non-editable) install at the versions of requirements.lock (`make
# lock`; its development tools are not installed): the packages and the Alembic
# migrations go into the virtualenv, which is all the runtime stage takes.
RUN python -m venv /venv \
    && /venv/bin/pip install --no-cache-dir --upgrade pip \
    && /venv/bin/pip install --no-cache-dir -c requirements.lock .

FROM ${PYTHON_IMAGE}
RUN useradd --create-home --uid 10001 payfeed
COPY --from=build /venv /venv
COPY docker/entrypoint.sh /usr/local/bin/payfeed-entrypoint
ENV PATH=/venv/bin:$PATH \
    PAYFEED_HOME=/home/payfeed/.payfeed
USER payfeed
WORKDIR /home/payfeed
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"
ENTRYPOINT ["payfeed-entrypoint"]
CMD ["payfeed", "serve", "--host", "0.0.0.0", "--port", "8000"]
