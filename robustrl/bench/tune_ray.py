"""Tuning trials as Ray tasks, with no shared file system.

The driver serves the study's SQLite storage over gRPC (Optuna's storage proxy, which needs
`grpcio`, installed with Ray); each task gets the spec's text, loads the study through the
proxy, runs one trial in a temporary folder on its node (intermediate reports and pruning
go through the proxy too) and tells the result. The driver keeps `workers` trials in flight
until `trials` are finished, so the count is exact. A task whose node dies is retried by Ray
as a new trial; the lost one stays RUNNING until the end, then is marked failed.
"""

from __future__ import annotations

import socket
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

from robustrl.bench.backends import RAY_RETRIES, ray_session
from robustrl.bench.tune_spec import TuneSpec, load_tune_spec
from robustrl.bench.tune_trial import ask, open_study, run_trial, too_many_failures, trial_counts


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _serve(storage_url: str) -> int:
    """Start Optuna's gRPC storage proxy for `storage_url` in a daemon thread; its port."""
    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import get_storage, run_grpc_proxy_server

    port = _free_port()
    with warnings.catch_warnings():  # experimental since Optuna 4.2; the tune extra pins it
        warnings.simplefilter("ignore", ExperimentalWarning)
        storage = get_storage(storage_url)

        def serve() -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                run_grpc_proxy_server(storage, host="0.0.0.0", port=port)

    threading.Thread(target=serve, daemon=True).start()
    return port


def ray_trial(spec_name: str, spec_text: str, label: str, host: str, port: int,
              seed_offset: int) -> str:
    """A Ray task: one trial of the study served at host:port, sampled with seed offset
    `seed_offset` (distinct per task: tasks that start together see the same trial count);
    returns its state's name."""
    from optuna.storages import GrpcStorageProxy

    from robustrl.bench.worker import init_worker

    init_worker()
    with tempfile.TemporaryDirectory(prefix="robustrl-trial-") as tmp:
        path = Path(tmp) / spec_name  # same file name: the study's default name is its stem
        path.write_text(spec_text)
        [(spec, params)] = [(s, p) for name, s, p in load_tune_spec(path) if name == label]
        proxy = GrpcStorageProxy(host=host, port=port)
        proxy.wait_server_ready(timeout=60)
        study = open_study(spec, proxy)
        return run_trial(study, ask(study, spec, seed_offset), spec, params, Path(tmp))


def run_trials_on_ray(spec_path: str, label: str, spec: TuneSpec, study: Any, out_dir: Path,
                      workers: int, address: str | None) -> None:
    import optuna

    port = _serve(f"sqlite:///{out_dir / 'study.sqlite'}")
    with ray_session(address, workers):
        import ray

        host = ray.util.get_node_ip_address()
        task = ray.remote(num_cpus=1, max_retries=RAY_RETRIES, retry_exceptions=False)(
            ray_trial)
        text = Path(spec_path).read_text()
        pending: list[Any] = []
        failed = 0
        launched = len(study.get_trials(deepcopy=False))  # seed offsets, one per task
        try:
            while True:
                c = trial_counts(study)
                while len(pending) < workers and \
                        c["COMPLETE"] + c["PRUNED"] + len(pending) < spec.trials:
                    pending.append(task.remote(Path(spec_path).name, text, label, host, port,
                                               launched))
                    launched += 1
                if not pending:
                    break
                done, pending = ray.wait(pending, num_returns=1)
                try:
                    state = ray.get(done[0])
                except ray.exceptions.RayTaskError as e:
                    raise e.as_instanceof_cause() from None
                failed += state == "FAIL"
                too_many_failures(spec, failed)
        finally:
            for ref in pending:
                ray.cancel(ref)
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
