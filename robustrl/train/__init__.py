"""A run: train an agent (online from an env, or offline from a dataset) into a run
directory, resume it, evaluate it. `run` holds the online run, `offline` the dataset one."""

from robustrl.train.run import (
    SECTIONS,
    Run,
    RunConfig,
    build_run,
    evaluate,
    import_user_modules,
    load_run_agent,
    load_run_config,
    read_run_toml,
    resume,
    run_to_dict,
    train,
)

__all__ = ["SECTIONS", "Run", "RunConfig", "build_run", "evaluate", "import_user_modules",
           "load_run_agent", "load_run_config", "read_run_toml", "resume", "run_to_dict",
           "train"]
