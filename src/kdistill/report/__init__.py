"""Reports: the results table (:mod:`.tables`), plots as Display objects (:mod:`.plots`) and the
report page of a run folder, ``report.md`` and a self-contained ``report.html`` (:mod:`.page`)."""

from .page import write_report
from .plots import (
                    CalibrationDisplay,
                    ConfusionDisplay,
                    CurvesDisplay,
                    PredictionGridDisplay,
                    SpaceDisplay,
                    TradeoffDisplay,
                    TrialsDisplay,
                    display_images,
                    save_figure,
)
from .tables import param_text, results_markdown, slug, table_rows, trials_table

__all__ = ["CalibrationDisplay", "ConfusionDisplay", "CurvesDisplay", "PredictionGridDisplay", "SpaceDisplay",
           "TradeoffDisplay", "TrialsDisplay", "display_images", "param_text", "results_markdown", "save_figure",
           "slug", "table_rows", "trials_table", "write_report"]
