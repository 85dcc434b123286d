#!/usr/bin/env bash
# The long fuzz run: every nnfast._core binding called with 20,000 hypothesis-drawn junk
# argument lists (CI runs a 2,400-case sample in tests/test_fuzz.py on every submission).
set -euo pipefail
cd "$(dirname "$0")/.."
NNFAST_HYPOTHESIS_PROFILE=long python -m pytest -q -p no:cacheprovider tests/test_fuzz.py \
  --hypothesis-show-statistics "$@"
