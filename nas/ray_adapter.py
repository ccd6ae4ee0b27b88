"""Ray, confined to this one module: starting or joining a cluster, scoring search candidates on
actors that each hold the supernet once, and timing latency groups on the node that has the
device. A worker that dies costs only its in-flight work: it is retried on a fresh actor or task."""
from __future__ import annotations

import socket
import time
from typing import Any, Callable

from space import Arch
from space.errors import UserError


def check_address(address: str | None, timeout: float = 2.0) -> None:
    """Fails in about `timeout` seconds, with one line, when `address` (host:port of a Ray head, or
    ray://host:port) does not answer: before any long work, instead of after it. `None`, 'local'
    and 'auto' need no network check."""
    if address in (None, "", "local", "auto"):
        return
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UserError(f"--ray-address {address!r}: write HOST:PORT of the Ray head node (e.g. 10.0.0.5:6379), "
                        f"'auto' for the cluster this machine joined, or 'local'")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise UserError(f"--ray-address {address}: nothing answers there ({e.strerror or type(e).__name__}); start "
                        f"the cluster with `ray start --head` or drop --ray-address") from None


def start_ray(address: str | None = None, num_cpus: int | None = None, resources: dict[str, float] | None = None,
              object_store_mb: int = 256) -> Any:
    """The one place Ray is started: joins `address`, or starts a private local Ray with capped
    object-store memory. Returns the `ray` module."""
    import ray
    if ray.is_initialized():
        return ray
    check_address(address)
    try:
        if address and address != "local":
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus, resources=resources or None, object_store_memory=object_store_mb * 2**20,
                     include_dashboard=False, log_to_driver=False)
    except Exception as e:  # noqa: BLE001  (Ray raises many types for a bad address)
        raise UserError(f"--ray-address {address}: cannot start or reach Ray ({str(e).splitlines()[0]}); check the "
                        "address and that RAY_AUTH_MODE is set the same here and on the cluster") from None
    return ray


class RayEvaluatorPool:
    def __init__(self, supernet_dir: str, eval_batches: int, workers: int, evaluator_factory: Callable,
                 address: str | None = None, threads_per_worker: int = 1, device: str = "cpu") -> None:
        """`evaluator_factory(folder, batches, device) -> Evaluator` builds each actor's scorer on the
        actor's device ("cuda" or "cpu"; the caller's, e.g. `nas.api` hands in its supernet scorer,
        so this module never imports the layer above it). An actor asks Ray for a GPU when `device`
        is CUDA, or "auto" and the cluster has GPUs."""
        ray = self.ray = start_ray(address, num_cpus=workers)
        gpus = 1 if device.startswith("cuda") or (device == "auto" and ray.cluster_resources().get("GPU", 0) >= 1) else 0

        @ray.remote(num_cpus=threads_per_worker, num_gpus=gpus, max_restarts=-1, max_task_retries=0)
        class EvalActor:
            def __init__(self, folder: str, batches: int, threads: int, factory) -> None:
                import torch
                torch.set_num_threads(threads)  # Ray reuses worker processes: set it every time
                self.ev = factory(folder, batches, "cuda" if gpus else "cpu")

            def losses(self, archs_json: list[str], batches: int | None = None) -> list[float]:
                archs = [Arch.from_json(a) for a in archs_json]
                return self.ev.losses(archs) if batches is None else self.ev.losses(archs, batches)

            def pid(self) -> int:
                import os
                return os.getpid()

        self.args = (supernet_dir, eval_batches, threads_per_worker, evaluator_factory)
        self.actors = [EvalActor.remote(*self.args) for _ in range(workers)]
        self.retries = 0
        self.patience_s = 300.0  # how long a dead actor may take to come back

    def losses(self, archs: list[Arch], batches: int | None = None) -> list[float]:
        """Losses in the order of `archs` (on the first `batches` validation batches, if given);
        chunks of a dead actor go again (the actor restarts)."""
        ray = self.ray
        n = len(self.actors)
        chunks = [[i for i in range(len(archs)) if i % n == k] for k in range(n)]
        out: list[float | None] = [None] * len(archs)
        pending = {self.actors[k].losses.remote([archs[i].to_json() for i in idx], batches): (k, idx)
                   for k, idx in enumerate(chunks) if idx}
        failing_since: float | None = None
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            ref = ready[0]
            k, idx = pending.pop(ref)
            try:
                for i, loss in zip(idx, ray.get(ref)):
                    out[i] = loss
                failing_since = None
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError):
                # the actor is restarting (it loads the supernet again): wait for it, up to a limit
                self.retries += 1
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since > self.patience_s:
                    raise UserError(f"Ray workers keep dying while scoring candidates (for {self.patience_s:.0f} s); "
                                    "check their memory") from None
                time.sleep(min(2.0, 0.1 * 2 ** min(self.retries, 5)))
                pending[self.actors[k].losses.remote([archs[i].to_json() for i in idx], batches)] = (k, idx)
        return out  # type: ignore[return-value]

    def close(self) -> None:
        for a in self.actors:
            self.ray.kill(a)
        self.actors = []


def ray_group_runner(hw, address: str):
    """A `run_group` for `latency.profile.profile` that times each group in a Ray task placed on a
    node offering the resource `hw.name` (or a GPU, for CUDA profiles). `address="local"` starts a
    private local Ray with that resource (for trying it out on one machine)."""
    ray = start_ray(address, num_cpus=2, resources={hw.name: 1} if address == "local" else None)
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
