#!/bin/sh
# Build the Expression TensorRT engine into the engine cache (an init container's command).
# Idempotent: the build is skipped when a plan for this (model hash, TensorRT version, GPU compute
# capability, profile) is already in the cache; concurrent runs on a shared volume build once.
#
# Environment: FARM_DATA_DIR (cache = $FARM_DATA_DIR/engines, where workers look), FARM_EXPRESSION_SIZE,
# ENGINE_MAX_BATCH (profile max, >= FARM_EXPRESSION_MAX_BATCH), ENGINE_OPT_BATCH (batch TensorRT tunes for).
set -eu
CACHE_DIR="${FARM_DATA_DIR:-/data}/engines"
SIZE="${FARM_EXPRESSION_SIZE:-512}"
MAX_BATCH="${ENGINE_MAX_BATCH:-64}"
OPT_BATCH="${ENGINE_OPT_BATCH:-16}"

mkdir -p "$CACHE_DIR"
# Seed the cache from the image: the ONNX graph exported at image build (same model hash, same
# file name) and any plan baked at image build (plan + metadata; the key check rejects a foreign one).
for seeded in /opt/farm/seed/*.onnx /opt/farm/seed/*.plan /opt/farm/seed/*.json; do
    [ -e "$seeded" ] || continue
    [ -e "$CACHE_DIR/$(basename "$seeded")" ] || cp "$seeded" "$CACHE_DIR/"
done
exec python -m farm.render.expression.build_engine --cache-dir "$CACHE_DIR" \
    --size "$SIZE" --max-batch "$MAX_BATCH" --opt-batch "$OPT_BATCH"
