# Cached virtual environments for CI and local runs, kept outside the repository.
#
#   ensure_venv NAME LOCKFILE   -> prints the venv's path; builds it on first use.
#
# The cache key is the lock file's content plus the Python version, so a change of
# dependencies builds a new environment and an unchanged one is reused (the main one is
# ~6 GB: torch with its CUDA libraries). A half-built environment (killed install) has no
# .ready marker and is rebuilt. Concurrent runs are serialised with flock.
CK_CACHE_ROOT=${CORRIDORKEY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/corridorkey-ci}
CK_PYTHON=${CORRIDORKEY_PYTHON:-python3}

ensure_venv() {
    local name=$1 lock=$2 key venv
    key=$( { "$CK_PYTHON" -c 'import sys; print(sys.version)'; cat "$lock"; } | sha256sum | cut -c1-16)
    venv=$CK_CACHE_ROOT/$name-$key
    mkdir -p "$CK_CACHE_ROOT"
    (
        flock 9
        if [ ! -f "$venv/.ready" ]; then
            echo "ci: building $name environment in $venv (first run for this lock file)" >&2
            rm -rf "$venv"
            local t0=$SECONDS
            "$CK_PYTHON" -m venv "$venv" >&2
            "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip "setuptools>=64" >&2
            "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$lock" >&2
            touch "$venv/.ready"
            echo "ci: built $name in $((SECONDS - t0)) s, $(du -sh "$venv" | cut -f1)" >&2
        else
            echo "ci: reusing $name environment $venv" >&2
        fi
    ) 9>"$CK_CACHE_ROOT/$name.lock"
    echo "$venv"
}
