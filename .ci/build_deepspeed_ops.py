"""Build the DeepSpeed CPU ops the suite uses (JIT, cached in ~/.cache/torch_extensions, keyed by the
virtualenv): the shared-memory comm op every DeepSpeed CPU run loads, and CPU Adam for ZeRO offload.
`.ci/run` starts it in the background; a test that needs an op meanwhile waits on torch's build lock."""

from deepspeed.accelerator import get_accelerator

for name in ("ShareMemCommBuilder", "CPUAdamBuilder"):
    get_accelerator().create_op_builder(name).load(verbose=False)
