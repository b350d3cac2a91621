# syntax=docker/dockerfile:1
# baton's production image: the `baton` command (orchestrator, reference agents, CLI) in a
# virtualenv on python:3.11-slim, running as an unprivileged user. The Helm chart
# (helm/baton/) runs it as the orchestrator (`baton serve …`) and as the reference agents
# (`baton agents serve …`).
#
#   docker build -t baton:0.1.0 .
#   docker run --rm -p 50051:50051 baton:0.1.0          # SQLite in /var/lib/baton, embedded agents

ARG PYTHON_IMAGE=python:3.11-slim

# ---- builder: resolve and install everything into /opt/venv --------------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv

# The runtime dependencies first, read from pyproject.toml: a change to the code alone reuses
# this layer.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && /opt/venv/bin/pip install -r /tmp/requirements.txt

# Then baton itself, not editable: the packages and their data (workflow definitions, the
# reference agents' job postings) are copied into site-packages; the sources stay behind.
COPY generated/ generated/
COPY server/ server/
COPY agents_clients/ agents_clients/
COPY agents/ agents/
RUN /opt/venv/bin/pip install --no-deps . \
    && /opt/venv/bin/pip uninstall --yes pip

# ---- runtime: the interpreter and the virtualenv, nothing else -----------------------------
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# A fixed numeric UID, so Kubernetes' runAsNonRoot can verify it (a user name cannot be
# checked); the chart's podSecurityContext uses the same numbers.
RUN groupadd --system --gid 10001 baton \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/baton --no-create-home \
        --shell /usr/sbin/nologin baton \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/baton

COPY --from=builder /opt/venv /opt/venv

USER 10001:10001
WORKDIR /var/lib/baton
EXPOSE 50051

# No HEALTHCHECK: Kubernetes ignores it and probes grpc.health.v1 itself (see the chart's
# probes), and a plain `docker run` can ask the same service: `baton health --target …`.
ENTRYPOINT ["baton"]
# For trying the image: plaintext and no authentication on the container's address, which
# `baton serve` refuses unless both are said explicitly (and then warns at start-up). The chart
# passes TLS and JWT options instead; see the README's TLS and Authentication sections.
CMD ["serve", "--listen", "0.0.0.0:50051", "--store", "sqlite:////var/lib/baton/baton.db", "--auth", "none", "--plaintext"]
