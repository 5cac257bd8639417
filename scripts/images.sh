#!/usr/bin/env bash
# Builds the container images of the five services (and of smsc-sim, which
# the dev overlay runs) without a Docker daemon and without a base image
# (make images; docs/images.md):
#   1. each binary, static: CGO_ENABLED=0 go build -trimpath -ldflags='-s -w'
#      into bin/image-build/<os>_<arch>/<name>;
#   2. tools/image's mkimage puts it on a base layer (users, CA bundle, /tmp)
#      and writes bin/images/<name>.tar (docker load, kind load
#      image-archive) and bin/images/<name>.oci/ (OCI layout, every
#      platform), reads each back, runs `/<name> -h` inside it as 65532, and
#      prints the sizes.
#
#   IMAGES="ingest billing"          only these
#   PLATFORMS=linux/amd64,linux/arm64  several architectures (the .tar holds the first)
#   VERSION=1.0.0                    the tag (default dev, as overlays/dev)
#   VERIFY=false                     skip the run inside the image (it needs root or
#                                    unprivileged user namespaces)
#   CA_CERTS=/path/to/bundle.pem     instead of this machine's Debian bundle
#   OUT=dir                          instead of bin/images
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

IMAGES=${IMAGES:-ingest compliance throttle smsc-link billing smsc-sim}
PLATFORMS=${PLATFORMS:-linux/amd64}
VERSION=${VERSION:-dev}
VERIFY=${VERIFY:-true}
CA_CERTS=${CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}
bindir=bin/image-build
out=${OUT:-bin/images}

# Reproducible: every timestamp is the commit's, the revision is the
# commit's (marked -dirty when the tree has changes), and the binaries carry
# no VCS stamp (which would differ between a dirty and a clean tree).
created=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [ "$revision" != unknown ] && [ -n "$(git status --porcelain 2>/dev/null)" ]; then
	revision=$revision-dirty
fi
source=${IMAGE_SOURCE:-$(git remote get-url origin 2>/dev/null || true)}

for platform in ${PLATFORMS//,/ }; do
	os=${platform%/*} arch=${platform#*/}
	mkdir -p "$bindir/${os}_$arch"
	for name in $IMAGES; do
		case $name in
		smsc-sim) dir=cmd pkg=./smsc-sim ;;
		*) dir=services/$name pkg=./cmd/$name ;;
		esac
		echo "== go build $name ($platform)"
		(cd "$dir" && CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -trimpath -buildvcs=false \
			-ldflags='-s -w' -o "$root/$bindir/${os}_$arch/$name" "$pkg")
	done
done

mkdir -p "$out"
echo "== mkimage"
# tools/image is a module of its own, outside the workspace (like tools/k8s).
GOWORK=off go -C tools/image build -o "$root/bin/mkimage" ./cmd/mkimage
# shellcheck disable=SC2086 # IMAGES is a list
bin/mkimage -bin "$bindir" -out "$out" -platforms "$PLATFORMS" -version "$VERSION" \
	-revision "$revision" -source "$source" -created "$created" -ca-certs "$CA_CERTS" \
	-verify="$VERIFY" $IMAGES | tee "$out/sizes.txt"
