# Shared by the Ascend ModelZoo launch scripts in this folder; sourced, not run.
#
# The scripts only set flags for train_keras.py and parse the log lines it writes (SPEC.md,
# "Training"): batch lines, whose field 16 is the step time in seconds, and patient lines,
# whose fields 3 and 6 are the patient's loss and accuracy. All logic lives in Python.
#
# Flags: --data_path=<BraTS root> (required), --epochs=N, --batch_size=N, --model_name=NAME
# (default dense24), --precision_mode=MODE, --rank_table_file=FILE (8p); anything else, and
# everything after "--", is passed to train_keras.py unchanged. $PYTHON picks the interpreter.

parse_args() {
    data_path=""
    batch_size=2
    model_name="dense24"
    precision_mode="allow_fp32_to_fp16"
    extra_args=()
    while [ $# -gt 0 ]; do
        case "$1" in
            --data_path=*) data_path="${1#*=}" ;;
            --epochs=*|--train_epochs=*) epochs="${1#*=}" ;;
            --batch_size=*) batch_size="${1#*=}" ;;
            --model_name=*) model_name="${1#*=}" ;;
            --precision_mode=*) precision_mode="${1#*=}" ;;
            --rank_table_file=*) export RANK_TABLE_FILE="${1#*=}" ;;
            --) shift; extra_args+=("$@"); break ;;
            *) extra_args+=("$1") ;;
        esac
        shift
    done
    if [ -z "$data_path" ]; then
        echo "error: give the dataset root with --data_path=<folder>" >&2
        exit 2
    fi
    Network="DenseNet3D_${model_name}_for_TensorFlow"
}

# run_device DEVICE_ID RANK_ID [train_keras.py flags...]: train on one device, console to a file.
run_device() {
    local device="$1" rank="$2"
    shift 2
    local out="test/output/${device}"
    rm -rf "${out}"
    mkdir -p "${out}"
    ASCEND_DEVICE_ID="${device}" RANK_ID="${rank}" "${PYTHON:-python3}" train_keras.py \
        -r "${data_path}" -mn "${model_name}" -bs "${batch_size}" -e "${epochs}" \
        --precision-mode "${precision_mode}" -sp "${out}/ckpt" --log-dir "${out}" \
        "$@" "${extra_args[@]}" > "${out}/console_${device}.log" 2>&1
    local status=$?
    if [ ${status} -ne 0 ]; then
        echo "error: training on device ${device} failed (exit ${status}); last lines of ${out}/console_${device}.log:" >&2
        tail -n 20 "${out}/console_${device}.log" >&2
    fi
    return ${status}
}

# write_case_log DEVICE_ID RANK_SIZE SUFFIX E2E_SECONDS: the key = value file of the run.
write_case_log() {
    local device="$1" rank_size="$2" suffix="$3" e2e_time="$4"
    local out="test/output/${device}"
    local log="${out}/train_${device}.log"
    # Mean step time, leaving out the first step (graph construction) when there are others.
    local step_time
    step_time=$(grep "^epoch-patient:" "${log}" | awk '{t[NR] = $16}
        END {if (NR == 0) exit 1; first = (NR > 1) ? 2 : 1;
             for (i = first; i <= NR; i++) {sum += t[i]; n++}; printf "%.6f", sum / n}')
    if [ -z "${step_time}" ]; then
        echo "error: no batch lines in ${log}" >&2
        return 1
    fi
    local last_patient
    last_patient=$(grep "^patient loss:" "${log}" | tail -n 1)
    if [ -z "${last_patient}" ]; then
        echo "error: no patient lines in ${log}" >&2
        return 1
    fi
    BatchSize="${batch_size}"
    RankSize="${rank_size}"
    DeviceType=$(uname -m)
    CaseName="${Network}_bs${BatchSize}_${RankSize}p_${suffix}"
    ActualFPS=$(awk -v b="${BatchSize}" -v r="${RankSize}" -v t="${step_time}" 'BEGIN {printf "%.4f", b * r / t}')
    TrainingTime=$(awk -v t="${step_time}" 'BEGIN {printf "%.2f", t * 1000}')
    ActualLoss=$(echo "${last_patient}" | awk '{gsub(",", "", $3); print $3}')
    TrainAccuracy=$(echo "${last_patient}" | awk '{print $6}')
    local case_log="${out}/${CaseName}.log"
    {
        echo "Network = ${Network}"
        echo "RankSize = ${RankSize}"
        echo "BatchSize = ${BatchSize}"
        echo "DeviceType = ${DeviceType}"
        echo "CaseName = ${CaseName}"
        echo "ActualFPS = ${ActualFPS}"
        echo "TrainingTime = ${TrainingTime}"
        echo "TrainAccuracy = ${TrainAccuracy}"
        echo "ActualLoss = ${ActualLoss}"
        echo "E2ETrainingTime = ${e2e_time}"
    } > "${case_log}"
    echo "Final Performance images/sec : ${ActualFPS}"
    echo "Final Performance ms/step : ${TrainingTime}"
    echo "Final Train Accuracy : ${TrainAccuracy}"
    echo "E2E Training Duration sec : ${e2e_time}"
    echo "wrote ${case_log}"
}

# run_1p SUFFIX [train_keras.py flags...]: one device (ASCEND_DEVICE_ID, default 0).
run_1p() {
    local suffix="$1"
    shift
    export RANK_SIZE=1
    local device="${ASCEND_DEVICE_ID:-0}"
    local start end
    start=$(date +%s)
    run_device "${device}" 0 "$@" || exit 1
    end=$(date +%s)
    write_case_log "${device}" 1 "${suffix}" $((end - start)) || exit 1
}

# run_8p SUFFIX [train_keras.py flags...]: devices 0..7 in the background, rank = device.
run_8p() {
    local suffix="$1"
    shift
    export RANK_SIZE=8
    if [ -z "${RANK_TABLE_FILE}" ]; then
        echo "warning: RANK_TABLE_FILE is not set (--rank_table_file=); HCCL needs it on Ascend" >&2
    fi
    local start end pids=() status=0 rank
    start=$(date +%s)
    for ((rank = 0; rank < RANK_SIZE; rank++)); do
        run_device "${rank}" "${rank}" "$@" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do
        wait "${pid}" || status=1
    done
    end=$(date +%s)
    [ ${status} -eq 0 ] || exit 1
    write_case_log 0 "${RANK_SIZE}" "${suffix}" $((end - start)) || exit 1
}
