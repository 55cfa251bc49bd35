#!/usr/bin/env bash
# Builds mppdl (as packaging/build.sh) and the Debian package mppdl_<version>_amd64.deb from the
# build directory: cpack installs into a staging tree under /usr, strips the binary and asks
# dpkg-shlibdeps for the Depends. Prints the package's path.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${MPPDL_BUILD_DIR:-build}
./packaging/build.sh >&2
(cd "$build_dir" && cpack -G DEB >&2)
ls "$build_dir"/mppdl_*_amd64.deb
