"""Scoring candidates on Ray actors that each hold the supernet once. The only module of `nas`
that imports Ray. A worker that dies costs only its in-flight candidates: they are retried on a
fresh actor."""
from __future__ import annotations

from space import Arch
from space.errors import UserError


class RayEvaluatorPool:
    def __init__(self, supernet_dir: str, eval_batches: int, workers: int, address: str | None = None,
                 threads_per_worker: int = 1, object_store_mb: int = 256, evaluator_factory=None) -> None:
        """`evaluator_factory(folder, batches) -> (Evaluator, model)` builds each actor's scorer
        (default: the one `nas evaluate` uses, on the supernet's own validation data)."""
        import ray
        self.ray = ray
        if not ray.is_initialized():
            try:
                if address:
                    ray.init(address=address, log_to_driver=False)
                else:
                    ray.init(num_cpus=workers, object_store_memory=object_store_mb * 2**20, include_dashboard=False,
                             log_to_driver=False)
            except Exception as e:  # noqa: BLE001  (Ray raises many types for a bad address)
                raise UserError(f"--ray-address {address}: cannot start or reach Ray ({str(e).splitlines()[0]})") from None

        @ray.remote(num_cpus=threads_per_worker, max_restarts=-1, max_task_retries=0)
        class EvalActor:
            def __init__(self, folder: str, batches: int, threads: int, factory) -> None:
                import torch
                torch.set_num_threads(threads)  # Ray reuses worker processes: set it every time
                if factory is None:
                    from nas.supernet_cli import supernet_evaluator as factory
                self.ev, _ = factory(folder, batches)

            def losses(self, archs_json: list[str]) -> list[float]:
                return self.ev.losses([Arch.from_json(a) for a in archs_json])

            def pid(self) -> int:
                import os
                return os.getpid()

        self.args = (supernet_dir, eval_batches, threads_per_worker, evaluator_factory)
        self.actors = [EvalActor.remote(*self.args) for _ in range(workers)]
        self.retries = 0

    def losses(self, archs: list[Arch]) -> list[float]:
        """Losses in the order of `archs`; chunks of a dead actor go again (the actor restarts)."""
        ray = self.ray
        n = len(self.actors)
        chunks = [[i for i in range(len(archs)) if i % n == k] for k in range(n)]
        out: list[float | None] = [None] * len(archs)
        pending = {self.actors[k].losses.remote([archs[i].to_json() for i in idx]): (k, idx)
                   for k, idx in enumerate(chunks) if idx}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            ref = ready[0]
            k, idx = pending.pop(ref)
            try:
                for i, loss in zip(idx, ray.get(ref)):
                    out[i] = loss
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError):
                self.retries += 1
                if self.retries > 10 * n:
                    raise UserError("Ray workers keep dying while scoring candidates; check their memory") from None
                pending[self.actors[k].losses.remote([archs[i].to_json() for i in idx])] = (k, idx)
        return out  # type: ignore[return-value]

    def close(self) -> None:
        for a in self.actors:
            self.ray.kill(a)
        self.actors = []
