#!/bin/bash
# make bench entry point: see bench/README.md. The harness is Python (Debian's
# python3, standard library only); it stops every process it started, also
# on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
exec /usr/bin/python3 bench/run.py "$@"
