"""Studies: run folders, model specs, the study runner (every model, every seed, evaluated and
compared with the student alone), verdicts, experiment files run end to end, and the demo."""

from .check import check_models
from .demo import demo_file, run_demo
from .experiment import load_splits, read_unlabeled, run_experiment, validate_experiment, write_data_summary
from .folders import CACHE, INCOMPLETE, finish_run_dir, free_dir, open_run_dir, release_run_dir, teacher_cache_dir
from .runner import METRICS, run_study
from .specs import ModelSpec, student_spec, teacher_spec
from .verdicts import verdicts

__all__ = ["CACHE", "INCOMPLETE", "METRICS", "ModelSpec", "check_models", "demo_file", "finish_run_dir", "free_dir",
           "load_splits", "open_run_dir", "read_unlabeled", "release_run_dir", "run_demo", "run_experiment",
           "run_study", "student_spec", "teacher_cache_dir", "teacher_spec", "validate_experiment", "verdicts",
           "write_data_summary"]
