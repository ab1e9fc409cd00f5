"""Sweeps that choose the recipe: Optuna over distillation methods, their options, the label
term's weight, learning rates, budgets and the unlabelled pool, with the student alone searched
alike as the baseline; the answer is a distilled recipe only when it beats the student alone on
validation by more than the seed-to-seed noise, and it is then tested on the test split."""

from ..report import trials_table  # the sweep's trials as a table (the CLI and the report show it)
from .decide import Candidate, candidates, decide
from .space import Recipe, Space
from .sweep import answer_lines, trial_rows, tune
from .trials import recipe_spec, target_student

__all__ = ["Candidate", "Recipe", "Space", "answer_lines", "candidates", "decide", "recipe_spec", "target_student",
           "trial_rows", "trials_table", "tune"]
