"""Build the DeepSpeed CPU ops the suite uses (JIT, cached in ~/.cache/torch_extensions, keyed by the
virtualenv): the shared-memory comm op every DeepSpeed CPU run loads, and CPU Adam for ZeRO offload."""

import time

from deepspeed.accelerator import get_accelerator

for name in ("ShareMemCommBuilder", "CPUAdamBuilder"):
    started = time.monotonic()
    get_accelerator().create_op_builder(name).load()
    print(f"{name}: {time.monotonic() - started:.0f} s", flush=True)
