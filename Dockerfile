# The platform image: dispatcher, sidecar and the wrapper file, one image (DESIGN §1).
#   docker build --build-arg PYTHON_DIGEST=sha256:<digest of python:3.11-slim-bookworm> \
#     --build-arg SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) -t crucible-platform:<tag> .
# Reproducible: the base is pinned by digest (the build fails without one), timestamps come
# from SOURCE_DATE_EPOCH (wheel, byte-code, zipapp), pip keeps no cache. The test cluster builds
# the same content without a Docker engine (tests/cluster/images.sh); keep the two in step.
ARG PYTHON_TAG=3.11-slim-bookworm
ARG PYTHON_DIGEST

FROM docker.io/library/python:${PYTHON_TAG}@${PYTHON_DIGEST} AS build
ARG SOURCE_DATE_EPOCH=0
ENV SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH} \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY wire ./wire
COPY wrapper ./wrapper
COPY sidecar ./sidecar
COPY dispatcher ./dispatcher
# The CLI in it runs on the Python client.
COPY crucible ./crucible
# One venv with the wheel and the dispatcher + sidecar extras; the wrapper as a single-file
# zipapp that the evaluation pod's init container copies into a shared emptyDir. With
# SOURCE_DATE_EPOCH set, pip's byte-code is hash-checked (no mtimes), hence reproducible.
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /dist . \
 && python -m venv /opt/crucible/venv \
 && wheel=$(ls /dist/crucible-*.whl) \
 && /opt/crucible/venv/bin/pip install --no-cache-dir "${wheel}[dispatcher,sidecar]" \
 && python -m wrapper.pack /opt/crucible/crucible-wrapper \
 && chmod 0755 /opt/crucible/crucible-wrapper

FROM docker.io/library/python:${PYTHON_TAG}@${PYTHON_DIGEST}
ARG SOURCE_DATE_EPOCH=0
RUN groupadd --system --gid 10001 crucible \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin crucible
COPY --from=build /opt/crucible /opt/crucible
# The chart runs every container with a read-only root filesystem: nothing may write byte-code.
ENV PATH=/opt/crucible/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /tmp
# The chart overrides the command per container: `crucible-dispatcher`, `python -m sidecar`,
# and for the init container `cp /opt/crucible/crucible-wrapper /crucible/bin/`.
ENTRYPOINT ["crucible-dispatcher"]
