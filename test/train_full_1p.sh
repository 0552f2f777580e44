#!/bin/bash
# Full training (the reference's 5 epochs) on one Ascend device, or on the CPU/GPU without one.
# Usage: bash test/train_full_1p.sh --data_path=<BraTS root> [--epochs=5] [--batch_size=2]
#        [--model_name=dense24] [--precision_mode=allow_fp32_to_fp16] [train_keras.py flags]
# Works from the model root or from test/. Writes test/output/<device>/train_<device>.log
# and test/output/<device>/<CaseName>.log (see test/modelzoo_common.sh).
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
source test/modelzoo_common.sh
epochs=5
parse_args "$@"
run_1p acc
