#!/usr/bin/env bash
# Set up (once) and start the Streamlit app on the bundled checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m streamlit run app.py "$@"
