# kdm: one image for every role (coordinator, producer, consumer).
# Pick the role with the command, e.g. `docker run kdm:latest kdm producer run`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin kdm

WORKDIR /app

# confluent-kafka ships manylinux wheels, so no compiler is needed.
COPY --chown=kdm:kdm pyproject.toml README.md ./
COPY --chown=kdm:kdm kdm ./kdm
COPY --chown=kdm:kdm producers ./producers
COPY --chown=kdm:kdm consumers ./consumers
COPY --chown=kdm:kdm coordinator ./coordinator
COPY --chown=kdm:kdm cli ./cli
COPY --chown=kdm:kdm schemas ./schemas
COPY --chown=kdm:kdm config ./config

RUN pip install --no-cache-dir . \
    && rm -rf build ./*.egg-info

USER kdm

# 8261 coordinator HTTP API + /metrics, 9101 producer metrics, 9102 consumer metrics.
EXPOSE 8261 9101 9102

CMD ["kdm", "--help"]
