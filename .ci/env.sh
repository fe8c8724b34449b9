# Cached virtual environments for CI and local runs, kept outside the repository.
#
#   ensure_venv NAME LOCKFILE [PIP_ARG...]  -> prints the venv's path; builds it on first use.
#
# Extra PIP_ARGs go to the `pip install -r LOCKFILE` (e.g. --no-deps for a lock that lists
# the complete environment) and are part of the cache key.
#
# The cache key is the lock file's content plus the Python version, so a change of
# dependencies builds a new environment and an unchanged one is reused (the main one is
# ~6 GB: torch with its CUDA libraries). A half-built environment (killed install) has no
# .ready marker and is rebuilt. Concurrent runs are serialised with flock.
CK_CACHE_ROOT=${CORRIDORKEY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/corridorkey-ci}
CK_PYTHON=${CORRIDORKEY_PYTHON:-python3}

ensure_venv() {
    local name=$1 lock=$2 key venv
    shift 2
    local pip_args=("$@")
    key=$( { "$CK_PYTHON" -c 'import sys; print(sys.version)'; cat "$lock"; [ ${#pip_args[@]} -eq 0 ] || echo "${pip_args[*]}"; } | sha256sum | cut -c1-16)
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
            "$venv/bin/python" -m pip install -q --disable-pip-version-check ${pip_args[@]+"${pip_args[@]}"} -r "$lock" >&2
            touch "$venv/.ready"
            echo "ci: built $name in $((SECONDS - t0)) s, $(du -sh "$venv" | cut -f1)" >&2
        else
            echo "ci: reusing $name environment $venv" >&2
        fi
    ) 9>"$CK_CACHE_ROOT/$name.lock"
    echo "$venv"
}

# overlay_venv BASE DEST -> a small venv at DEST that sees BASE's packages (through a .pth
# path line) and gets this checkout installed editable into itself. The cached BASE is
# never modified, so several checkouts (CI clones, a developer's tree) can share it.
overlay_venv() {
    local base=$1 dest=$2 base_site site
    rm -rf "$dest"
    "$CK_PYTHON" -m venv --without-pip "$dest" >&2
    base_site=$("$base/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    site=$("$dest/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    echo "$base_site" > "$site/_corridorkey_ci_base.pth"
    "$dest/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . >&2
    echo "$dest"
}
