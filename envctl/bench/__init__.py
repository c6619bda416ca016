"""Benchmark runs and their comparison: ``runs`` (probe documents from files, records or a run
now), ``compare`` (the regression gate, with its noise floors and withheld rows), ``html`` (the
page with bars and intervals)."""

from envctl.bench.compare import (Comparison, RowChange, check_threshold, compare, compare_row, comparison_dict,
                                  noise_floors, row_flags, run_spread)
from envctl.bench.runs import BenchRun, check_document, check_repeat, load_runs, measure_image

__all__ = ["BenchRun", "Comparison", "RowChange", "check_document", "check_repeat", "check_threshold", "compare",
           "compare_row", "comparison_dict", "load_runs", "measure_image", "noise_floors", "row_flags", "run_spread"]
