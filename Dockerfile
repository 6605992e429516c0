# selfheal's container image: `selfheal serve` as an unprivileged user, data in /data.
#   docker build --build-arg BASE=python:3.11-slim -t selfheal:dev .   (official Python image)
#   scripts/image                                                       (no registry: local Debian base)
# The base needs Python >= 3.11 with venv; both stages use the same one.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/selfheal
# the pinned dependencies first: this layer is reused while only the sources change
COPY requirements.lock /src/requirements.lock
RUN /opt/selfheal/bin/pip install --no-deps -r /src/requirements.lock
COPY pyproject.toml README.md LICENSE /src/
COPY src /src/src
# the package alone (its dependencies are the locked ones above), as a wheel, not editable
RUN /opt/selfheal/bin/pip wheel --no-deps --wheel-dir /tmp/wheels /src \
 && /opt/selfheal/bin/pip install --no-deps /tmp/wheels/*.whl \
 && /opt/selfheal/bin/pip check \
 && /opt/selfheal/bin/pip uninstall --yes pip

FROM ${BASE}
RUN groupadd --system --gid 10001 selfheal \
 && useradd --system --uid 10001 --gid selfheal --home-dir /data --shell /usr/sbin/nologin selfheal \
 && mkdir -p /data /etc/selfheal \
 && chown selfheal:selfheal /data
COPY --from=build /opt/selfheal /opt/selfheal
COPY deploy/docker-entrypoint.sh /usr/local/bin/selfheal-entrypoint
ENV PATH=/opt/selfheal/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=5000 \
    DATA_DIR=/data \
    DATABASE_URL=sqlite+aiosqlite:////data/selfheal.db \
    LOG_FORMAT=json
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 5000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '5000'), timeout=4)"]
ENTRYPOINT ["selfheal-entrypoint"]
CMD ["serve"]
