#!/usr/bin/env bash
# Builds the container image from the repository's Dockerfile with
# whichever of podman, buildah or docker is installed:
#
#   scripts/build-image.sh [TAG]        # default nestor:dev
#
# The build pulls two base images (rust:*-slim and debian:*-slim) from
# Docker Hub. On a machine that reaches only package registries (crates.io,
# PyPI, Debian, npm) — the project's development machines and CI — they
# cannot be pulled, so the image is not built there; this script then says
# so and exits 3, distinct from a failed build (1).
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-nestor:dev}"

if command -v podman >/dev/null 2>&1; then
  build=(podman build)
elif command -v buildah >/dev/null 2>&1; then
  build=(buildah bud)
elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  build=(docker build)
else
  echo "build-image: no podman, buildah or running docker daemon; install one (apt-get install podman)" >&2
  exit 3
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if "${build[@]}" --tag "$tag" --file Dockerfile . 2>&1 | tee "$log"; then
  echo "build-image: built $tag"
  "${build[0]}" image inspect "$tag" --format '{{.Size}} bytes, user {{.Config.User}}' 2>/dev/null || true
  exit 0
fi
if grep -qiE "pull|registry|manifest unknown|dial tcp|no such host|name resolution" "$log"; then
  echo "build-image: the base images cannot be pulled from this machine; the image is not buildable here" >&2
  exit 3
fi
exit 1
