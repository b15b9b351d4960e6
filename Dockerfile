# One image per service: podman build --build-arg SERVICE=gateway -t mp3converter/gateway .
# SERVICE is auth, gateway, converter or notification. Build context: the repository root.
#   auth          gunicorn + Flask + mysqlclient (compiled against MariaDB Connector/C), :5000
#   gateway       gunicorn + Flask, its page and OpenAPI document (package data), :8080; it
#                 also carries the operator commands (src/ops, `python3 -m ops ...`): the sweep
#                 CronJob runs this image
#   converter     consumer; ffmpeg is the binary the imageio-ffmpeg wheel ships
#   notification  consumer
ARG BASE_IMAGE=python:3.11-slim
ARG SERVICE

FROM ${BASE_IMAGE} AS build
ARG SERVICE
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 DEBIAN_FRONTEND=noninteractive
# auth only: mysqlclient compiles against MariaDB Connector/C; Python headers come with the
# official image and are added here only when the base lacks them.
# hadolint ignore=DL3008
RUN if [ "$SERVICE" = auth ]; then \
        apt-get update && \
        apt-get install -y --no-install-recommends gcc libc6-dev pkg-config libmariadb-dev && \
        if [ ! -e "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ]; then \
            apt-get install -y --no-install-recommends python3-dev; \
        fi && \
        rm -rf /var/lib/apt/lists/*; \
    fi
RUN python3 -m venv /opt/venv
WORKDIR /build
COPY src/common/requirements.txt src/common/
COPY src/${SERVICE}/requirements.txt src/${SERVICE}/
RUN /opt/venv/bin/pip install --no-cache-dir -r "src/${SERVICE}/requirements.txt"
# The service and common/ (gateway: and ops/) installed as the package pyproject.toml describes.
COPY pyproject.toml ./
COPY src/common/ src/common/
COPY src/${SERVICE}/ src/${SERVICE}/
COPY src/ops/ src/ops/
# The page's one third-party script, tus-js-client's browser build (resumable uploads), comes
# with src/gateway/ from the build context, where scripts/vendor-js.sh put it (make bootstrap,
# scripts/podman-images.sh; it needs npm): checked here against the SHA-256 pinned in that
# script, so no image is built without it or with another file; no CDN, no registry.
COPY scripts/vendor-js.sh scripts/
RUN if [ "$SERVICE" = gateway ]; then \
        VENDOR_JS_CHECK_ONLY=1 scripts/vendor-js.sh src/gateway/static/vendor || { \
            echo "run scripts/vendor-js.sh before building the gateway image" >&2; exit 1; }; \
    fi && \
    if [ "$SERVICE" != gateway ]; then rm -rf src/ops; fi && \
    /opt/venv/bin/pip install --no-cache-dir --no-deps . && \
    /opt/venv/bin/python -c "import common, ${SERVICE}"

FROM ${BASE_IMAGE} AS runtime
ARG SERVICE
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PATH=/opt/venv/bin:$PATH
# auth only: MariaDB Connector/C, which mysqlclient loads. gateway only: the MariaDB client
# programs (mariadb-dump, mariadb) that the backup commands of src/ops run (the backup CronJob).
# hadolint ignore=DL3008
RUN if [ "$SERVICE" = auth ]; then \
        apt-get update && \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libmariadb3 && \
        rm -rf /var/lib/apt/lists/*; \
    elif [ "$SERVICE" = gateway ]; then \
        apt-get update && \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends mariadb-client && \
        rm -rf /var/lib/apt/lists/*; \
    fi && \
    groupadd --gid 10001 app && \
    useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
USER 10001:10001

# What each service runs: the last stage is the one SERVICE names.
FROM runtime AS auth
ENV PORT=5000
EXPOSE 5000
ENTRYPOINT ["python3", "-m", "gunicorn", "-c", "python:common.gunicorn_conf", "auth:create_app()"]

FROM runtime AS gateway
ENV PORT=8080
EXPOSE 8080
ENTRYPOINT ["python3", "-m", "gunicorn", "-c", "python:common.gunicorn_conf", "gateway:create_app()"]

FROM runtime AS converter
ENTRYPOINT ["python3", "-m", "converter"]

FROM runtime AS notification
ENTRYPOINT ["python3", "-m", "notification"]

# hadolint ignore=DL3006
FROM ${SERVICE}
