#!/usr/bin/env bash
# Installs the Debian package into this machine with apt-get and checks it as a user would, from
# the installed paths only: the build and source trees are hidden (a private mount namespace puts
# an empty directory over them), so nothing can be found there by accident. Needs root.
#   ./packaging/install-test.sh [PACKAGE.deb]     (default: build it with packaging/package.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
deb=${1:-$(./packaging/package.sh | tail -1)}
deb=$(realpath "$deb")
# 77: ctest's "skipped" (SKIP_RETURN_CODE) where the machine cannot be changed.
[ "$(id -u)" -eq 0 ] || { echo "install-test: needs root (apt-get install, a mount namespace): skipped" >&2; exit 77; }

export DEBIAN_FRONTEND=noninteractive
was_installed=$(dpkg-query -W -f='${Status}' mppdl 2>/dev/null | grep -c 'install ok installed' || true)
apt-get install -y -qq --reinstall --no-install-recommends "$deb" >/dev/null
# The machine is left as it was: a package this test installed is removed again.
cleanup() {
  rm -rf "${work:-/nonexistent}"
  if [ "$was_installed" = 0 ] && [ -z "${MPPDL_KEEP_INSTALLED:-}" ]; then
    apt-get remove -y -qq mppdl >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
echo "install-test: installed $(dpkg-query -W -f='${Package} ${Version}' mppdl)"

fail() { echo "install-test: FAIL: $*" >&2; exit 1; }
# What the package holds, where Debian expects it.
for f in /usr/bin/mppdl /usr/share/mppdl/architectures/lenet5.json /usr/share/applications/mppdl.desktop \
         /usr/share/mime/packages/mppdl.xml /usr/share/icons/hicolor/scalable/apps/mppdl.svg \
         /usr/share/icons/hicolor/48x48/apps/mppdl.png /usr/share/man/man1/mppdl.1.gz; do
  [ -e "$f" ] || fail "$f is not installed"
done
desktop-file-validate /usr/share/applications/mppdl.desktop || fail "the desktop entry does not validate"
man -l /usr/share/man/man1/mppdl.1.gz 2>/dev/null | grep -q "mppdl - deep learning workbench" || fail "the man page"
if ldd /usr/bin/mppdl | grep -q "not found"; then fail "unresolved libraries: $(ldd /usr/bin/mppdl | grep 'not found')"; fi

# The commands, with the trees it was built from out of sight, in a scratch directory.
work=$(mktemp -d)
cat > "$work/check.sh" <<'CHECK'
set -euo pipefail
cd "$1"
/usr/bin/mppdl --version
/usr/bin/mppdl arch show lenet5 | head -5
/usr/bin/mppdl demo --limit 2000 --no-project | tail -3
CHECK
unshare --mount sh -c "mount --make-rprivate / && mount -t tmpfs tmpfs '$repo' && bash '$work/check.sh' '$work'" \
  > "$work/out.txt" 2>&1 || { cat "$work/out.txt" >&2; fail "the installed mppdl"; }
cat "$work/out.txt"
grep -q "^mppdl ${MPPDL_VERSION:-[0-9]}" "$work/out.txt" || fail "mppdl --version"
grep -q "test accuracy" "$work/out.txt" || fail "mppdl demo printed no test accuracy"
echo "install-test: the installed package works (build tree hidden)"
