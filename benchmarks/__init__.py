"""Benchmarks and evaluations of ddip-video, run from the repository root as
modules, e.g. `python -m benchmarks.eval_davis ../shared/data/davis2016`.
What only they need lives here, not in the package: the scores (metrics), the
reference methods the tasks are compared with (baselines), and reading the
datasets (data)."""
