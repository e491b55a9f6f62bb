# The platform image: dispatcher, sidecar and the wrapper, one image (DESIGN §1).
#   buildah bud --build-arg PYTHON_DIGEST=sha256:<digest of python:3.11-slim-bookworm> \
#     --build-arg SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) --timestamp "$(git log -1 --format=%ct)" \
#     --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) -t crucible-platform:<tag> .
# (`docker build` takes the same arguments, without --timestamp.) BASE is any Debian-family
# image with python3.11 and its venv module; the test cluster passes a debootstrap root filesystem
# (tests/cluster/images.sh), users the official image pinned by digest (the build fails without one).
# Reproducible: timestamps come from SOURCE_DATE_EPOCH (wheel, byte-code) and the builder's
# --timestamp (files, history), hash seeds are fixed, and pip keeps no cache.
ARG PYTHON_DIGEST
ARG BASE=docker.io/library/python:3.11-slim-bookworm@${PYTHON_DIGEST}

# crucible-launch (wrapper/launch.c), static: it starts the wrapper bundle in any executor image.
FROM ${BASE} AS launcher
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -qq -y --no-install-recommends gcc libc6-dev \
    >/dev/null
COPY wrapper/launch.c /src/launch.c
RUN gcc -Os -static -Wall -Wextra -Werror -o /crucible-launch /src/launch.c && strip /crucible-launch

FROM ${BASE} AS build
ARG SOURCE_DATE_EPOCH=0
# Extra pip options: the test cluster installs offline from wheels it downloaded and mounts
# ("--no-index --find-links /wheels"); empty means PyPI.
ARG PIP_OPTIONS=""
ENV SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH} \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONHASHSEED=0
WORKDIR /src
COPY pyproject.toml README.md ./
COPY wire ./wire
COPY wrapper ./wrapper
COPY sidecar ./sidecar
COPY dispatcher ./dispatcher
# The CLI in it runs on the Python client.
COPY crucible ./crucible
# One venv with the wheel and the dispatcher + sidecar extras (pip itself removed after), the
# wrapper as a zipapp for executor images with python, and as a bundle (its own interpreter,
# libraries and loader) for any other image. With SOURCE_DATE_EPOCH set, pip's byte-code is
# hash-checked (no mtimes), and PYTHONHASHSEED=0 orders its frozensets: the same bytes each time.
COPY --from=launcher /crucible-launch /tmp/crucible-launch
# ${PIP_OPTIONS} is unquoted on purpose: a list of words.
RUN python3 -m venv /opt/crucible/venv \
 && venv=/opt/crucible/venv/bin \
 && "$venv/pip" wheel ${PIP_OPTIONS} --no-deps --wheel-dir /dist . \
 && "$venv/pip" install ${PIP_OPTIONS} "$(ls /dist/crucible-*.whl)[dispatcher,sidecar]" \
 && "$venv/pip" uninstall --quiet --yes pip setuptools \
 && python3 -m wrapper.pack /opt/crucible/crucible-wrapper \
 && python3 -m wrapper.bundle --launcher /tmp/crucible-launch /opt/crucible/wrapper-bundle

FROM ${BASE}
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/crucible-dev/crucible
LABEL org.opencontainers.image.title="crucible-platform" \
      org.opencontainers.image.description="crucible's dispatcher, sidecar and wrapper" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# The user is appended rather than made with useradd: no shadow or lastlog entry whose date
# would change the image with the day of the build.
RUN echo 'crucible:x:10001:10001::/nonexistent:/usr/sbin/nologin' >>/etc/passwd \
 && echo 'crucible:x:10001:' >>/etc/group
COPY --from=build /opt/crucible /opt/crucible
# The chart runs every container with a read-only root filesystem: nothing may write byte-code.
ENV PATH=/opt/crucible/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /tmp
# The chart overrides the command per container: `crucible-dispatcher`, `python -m sidecar`,
# and for the init container a copy of the wrapper into the pod's crucible-bin volume.
ENTRYPOINT ["crucible-dispatcher"]
