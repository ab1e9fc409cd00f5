"""Studies: run folders, model specs and kinds, the study runner (every model, every seed,
evaluated and compared with the student alone), verdicts, the comparison from Python, experiment
files run end to end, and the demo."""

from .check import check_models
from .comparison import compare, run_in_folder
from .demo import demo_file, run_demo
from .experiment import (
                         load_splits,
                         read_unlabeled,
                         resolved_config,
                         run_experiment,
                         validate_experiment,
                         write_data_summary,
)
from .folders import CACHE, INCOMPLETE, finish_run_dir, free_dir, open_run_dir, release_run_dir, teacher_cache_dir
from .runner import METRICS, baselines, run_study
from .specs import ModelSpec, student_spec, teacher_spec
from .verdicts import verdicts

__all__ = ["CACHE", "INCOMPLETE", "METRICS", "ModelSpec", "baselines", "check_models", "compare", "demo_file",
           "finish_run_dir", "free_dir", "load_splits", "open_run_dir", "read_unlabeled", "release_run_dir",
           "resolved_config", "run_demo", "run_experiment", "run_in_folder", "run_study", "student_spec",
           "teacher_cache_dir", "teacher_spec", "validate_experiment", "verdicts",
           "write_data_summary"]
