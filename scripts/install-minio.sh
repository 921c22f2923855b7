#!/bin/sh
# install-minio.sh installs the MinIO server used by the S3 backend tests into
# <repo>/.cache/bin/minio. It is idempotent: when the binary is already there
# it does nothing, so a re-run on the same machine (or a CI cache hit on
# .cache/) costs nothing. Building MinIO from source takes a few minutes.
#
# Tests find it via LIFEBOAT_MINIO, then <repo>/.cache/bin/minio, then PATH.
set -eu

MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"

repo=$(cd "$(dirname "$0")/.." && pwd)
bin="$repo/.cache/bin"

if [ -x "$bin/minio" ]; then
	echo "minio already installed: $bin/minio"
	exit 0
fi

mkdir -p "$bin"
echo "installing github.com/minio/minio@$MINIO_VERSION into $bin (takes a few minutes)"
GOBIN="$bin" go install "github.com/minio/minio@$MINIO_VERSION"
echo "installed $bin/minio"
