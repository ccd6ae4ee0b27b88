"""Profiling another machine through Ray: the timing runs on a node that has the device (named by
a Ray custom resource, the hardware's name, or a GPU), the dataset is written here. The only module
that imports Ray."""
from __future__ import annotations

from typing import Any

from latency.hardware import Hardware
from space.errors import UserError


def ray_group_runner(hw: Hardware, address: str, object_store_mb: int = 256):
    """A `run_group` for `latency.profile.profile` that times each group in a Ray task placed on
    a node offering the resource `hw.name` (or a GPU, for CUDA profiles). `address="local"` starts
    a private local Ray with that resource (for trying it out on one machine)."""
    import ray
    if not ray.is_initialized():
        try:
            if address == "local":
                ray.init(num_cpus=2, resources={hw.name: 1}, object_store_memory=object_store_mb * 2**20,
                         include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, log_to_driver=False)
        except Exception as e:  # noqa: BLE001  (Ray raises many types for a bad address)
            raise UserError(f"--ray-address {address}: cannot connect ({str(e).splitlines()[0]}); check the address "
                            "and that RAY_AUTH_MODE is set the same here and on the cluster") from None
    resources: dict[str, Any] = {"num_gpus": 1} if hw.device == "cuda" else {"resources": {hw.name: 1}}
    if hw.device != "cuda" and not any(hw.name in n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")):
        raise UserError(f"no live Ray node offers the resource {hw.name!r}; start the device's node with "
                        f"`ray start --address ... --resources '{{\"{hw.name}\": 1}}'`")

    @ray.remote(num_cpus=1, max_retries=2, **resources)
    def timed_group(archs, workload, device, protocol, threads, reference):
        from latency.profile import time_group
        return time_group(archs, workload, device, protocol, threads, reference=reference)

    def run_group(archs, workload, device, protocol, threads, reference=None):
        return ray.get(timed_group.remote(archs, workload, device, protocol, threads, reference))

    return run_group
