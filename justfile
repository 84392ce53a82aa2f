# pms-trio workflow: `just --list` shows every recipe with the comment above it.

set shell := ["bash", "-euo", "pipefail", "-c"]

python := env_var_or_default("PYTHON", "python")

# Show the recipes
default:
    @just --list

# Install the package (editable) with its test extra; builds the Rust core with maturin
install:
    {{python}} -m pip install -e '.[test]'

# Build a release wheel into target/wheels/
build:
    maturin build --release

# The README's first command: install, then run the server on the default config
run:
    scripts/run

# The README's test command: outside peers (apt when missing), pip install '.[test]', pytest ARGS
test *ARGS:
    scripts/test {{ARGS}}

# ruff and mypy (installed first), cargo fmt --check and clippy with warnings as errors
lint:
    {{python}} -m pip install --quiet ruff mypy
    {{python}} -m ruff check python tests
    {{python}} -m mypy python/pms_trio
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# Fuzz every cargo-fuzz target for SECONDS each, then every atheris target (fuzz/**/*.py) for RUNS inputs
fuzz SECONDS="60" RUNS="100000":
    #!/usr/bin/env bash
    set -euo pipefail
    # fuzz/corpus/<target> seeds each run and is never written: new inputs go to
    # fuzz/target/corpus/<target>, crashes to fuzz/artifacts/<target>/ (minimize one with
    # `cargo fuzz tmin`, add it to fuzz/corpus/<target>/ with the fix; tests/fuzz_corpus.rs replays it).
    export RUSTC_BOOTSTRAP=1  # cargo-fuzz needs nightly flags (-Zsanitizer); stable works with this
    scratch=fuzz/target/corpus
    ran=0
    if [[ -f fuzz/Cargo.toml ]]; then
        command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
        for target in $(cargo fuzz list); do
            mkdir -p "$scratch/$target" "fuzz/corpus/$target"
            echo "== cargo fuzz run $target ({{SECONDS}} s)"
            cargo fuzz run "$target" "$scratch/$target" "fuzz/corpus/$target" -- -max_total_time={{SECONDS}}
            ran=1
        done
    fi
    mapfile -t atheris_targets < <(find fuzz -name '*.py' -not -path '*/target/*' | sort)
    if (( ${#atheris_targets[@]} )); then
        if {{python}} -c 'import atheris' 2>/dev/null || {{python}} -m pip install --quiet atheris; then
            for target in "${atheris_targets[@]}"; do
                name=$(basename "$target" .py)
                name=${name#atheris_}
                mkdir -p "$scratch/$name" "fuzz/corpus/$name"
                echo "== atheris $target (-runs={{RUNS}})"
                {{python}} "$target" -runs={{RUNS}} "$scratch/$name" "fuzz/corpus/$name"
                ran=1
            done
        else
            echo "atheris does not install/build for $({{python}} --version 2>&1) here; skipping ${atheris_targets[*]}"
        fi
    fi
    (( ran )) || echo "no fuzz targets yet"

# Run every benchmark in bench/ (scripts, and cargo crates in release); ARGS go to each
bench *ARGS:
    #!/usr/bin/env bash
    set -euo pipefail
    shopt -s nullglob
    entries=(bench/*)
    (( ${#entries[@]} )) || { echo "no benchmarks yet"; exit 0; }
    for entry in "${entries[@]}"; do
        echo "== $entry"
        if [[ -f $entry/Cargo.toml ]]; then
            cargo run --release --manifest-path "$entry/Cargo.toml" -- {{ARGS}}
        elif [[ $entry == *.py ]]; then
            {{python}} "$entry" {{ARGS}}
        elif [[ $entry == *.sh ]]; then
            bash "$entry" {{ARGS}}
        elif [[ -f $entry && -x $entry ]]; then
            "$entry" {{ARGS}}
        else
            echo "not yet runnable: $entry"
        fi
    done
