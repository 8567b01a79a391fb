"""A run: train an agent (online from an env, or offline from a dataset) into a run
directory, resume it, evaluate it. `run` holds the online run, `offline` the dataset one,
`pipeline` the envs a run makes (make → reward wrapper → perturbations), `evaluation` the
scoring of an agent, `rundir` what both runs read back from a run directory."""

from robustrl.train.evaluation import evaluate
from robustrl.train.pipeline import eval_env, training_envs
from robustrl.train.run import (
    SECTIONS,
    Run,
    RunConfig,
    build_run,
    import_user_modules,
    load_run_agent,
    load_run_config,
    resume,
    run_to_dict,
    train,
)
from robustrl.train.run_eval import evaluate_run, evaluate_sb3
from robustrl.train.rundir import read_run_toml

__all__ = ["SECTIONS", "Run", "RunConfig", "build_run", "eval_env", "evaluate", "evaluate_run",
           "evaluate_sb3", "import_user_modules", "load_run_agent", "load_run_config",
           "read_run_toml", "resume", "run_to_dict", "training_envs", "train"]
