#!/usr/bin/env bash
# The main job: set-up, build, then run mppdl.
#   ./packaging/run.sh              -> the GUI when there is a display and it was built, else `mppdl demo`
#   ./packaging/run.sh ARGS...      -> `mppdl ARGS...` (e.g. ./packaging/run.sh train --help)
set -euo pipefail
cd "$(dirname "$0")/.."

./packaging/install-deps.sh
./packaging/build.sh

mppdl=build/app/mppdl
if [ $# -gt 0 ]; then
  exec "$mppdl" "$@"
fi
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && "$mppdl" --help 2>/dev/null | grep -q '^ *gui'; then
  exec "$mppdl" gui
fi
exec "$mppdl" demo
