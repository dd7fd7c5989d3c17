#!/usr/bin/env bash
# Installs the real huggingface_hub releases that the Hugging Face layout tests read model-pull's
# cache with (__tests__/layouts/hf-huggingface-hub.test.ts), each in its own venv under
# .ci/hf-readers/<version>/ (git-ignored). The test suite runs this too when a venv is missing.
# Wheels come from the machine's pip configuration; where that names local (file://) indexes and
# no index-url, pip is pointed at them alone, so it never waits on an index it cannot reach.
# Without python3 it installs nothing: the tests then skip, loudly.
set -euo pipefail
cd "$(dirname "$0")"
VERSIONS=(2.0.0 1.33.0)
command -v python3 >/dev/null || { echo "hf-readers: python3 not found, nothing installed" >&2; exit 0; }

index_args=()
if [ -z "${PIP_INDEX_URL:-}" ] && [ -z "$(python3 -m pip config get global.index-url 2>/dev/null || true)" ]; then
  read -r -a extra <<<"$(python3 -m pip config get global.extra-index-url 2>/dev/null | tr "\n" " " || true)"
  if [ "${#extra[@]}" -gt 0 ] && [[ ${extra[0]} == file://* ]]; then
    index_args=(--index-url "${extra[0]}")
    for url in "${extra[@]:1}"; do index_args+=(--extra-index-url "$url"); done
  fi
fi

mkdir -p hf-readers
exec 9>hf-readers/.lock
flock 9
for version in "${VERSIONS[@]}"; do
  venv=hf-readers/$version
  [ -f "$venv/.installed" ] && continue
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -qq --disable-pip-version-check ${index_args[@]+"${index_args[@]}"} "huggingface_hub==$version"
  "$venv/bin/python" -c "import huggingface_hub, sys; sys.exit(huggingface_hub.__version__ != '$version')"
  touch "$venv/.installed"
  echo "hf-readers: huggingface_hub $version in .ci/$venv"
done
