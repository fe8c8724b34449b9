#!/usr/bin/env bash
# Nuke 14 stretch check (not in CI): export a synthetic model for --target-nuke 14 (and, for
# contrast, 16) with this checkout's environment, then load and run it in torch 1.13.1, the
# oldest PyPI torch for Python 3.11 (Nuke 14's own 1.12 has no Python 3.11 wheel).
#
#   source <project venv>/bin/activate; tests/compat/check_torch113.sh [IMG_SIZE]   (default S=128)
#
# Builds/reuses a cached ~3.3 GB environment (.ci/requirements-torch113.lock). Prints the
# runner's error table per target; exit status 0 when the Nuke 14 target matches (fp32).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
source .ci/env.sh
main_python=${CORRIDORKEY_MAIN_PYTHON:-python}  # the project's environment (activate it first)
"$main_python" -c 'import corridorkey_export' 2>/dev/null || {
    echo "error: $main_python cannot import corridorkey_export; activate the project's venv or set CORRIDORKEY_MAIN_PYTHON" >&2
    exit 2
}
old_python=$(ensure_venv torch113 .ci/requirements-torch113.lock --no-deps)/bin/python
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
size=${1:-128}
status=0
for target in 14 16; do
    echo "== --target-nuke $target, S=$size"
    PYTHONPATH="$repo/tests" "$main_python" - "$work/$target" "$size" "$target" <<'PY'
import sys
from pathlib import Path
import torch
from corridorkey_export.export import export_torchscript
from corridorkey_model.testing import make_random_model
import test_compat_torch21 as t  # make_cases and the runner, shared with the CI test
folder, size, target = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
folder.mkdir(parents=True)
result = export_torchscript(make_random_model(size, seed=0), folder / "CorridorKey.pt", target_nuke=target)
cases = t.make_cases()
torch.save(cases, folder / "cases.pt")
outputs = t.runner.run_cases(torch.jit.load(str(result.output)).eval(), cases, "fp32")
t.runner.save_atomic({"torch": str(torch.__version__), "outputs": outputs}, str(folder / "expected.pt"))
PY
    if "$old_python" -I tests/compat/run_torchscript.py "$work/$target/CorridorKey.pt" "$work/$target/cases.pt" \
        "$work/$target/old.pt" --dtype fp32 --expected "$work/$target/expected.pt" 2>&1 | grep -v Warning | tail -12; then :; fi
    rc=${PIPESTATUS[0]}
    echo "-- target $target: runner exit status $rc"
    if [ "$target" = 14 ] && [ "$rc" != 0 ]; then status=1; fi
done
exit $status
