"""HTML reports: a per-subject report and a cohort dashboard, both single offline files.

The report package takes images and DataFrames (or paths to saved tables) and never imports
:mod:`spinemetrics.stats`; the CLI composes the two.
"""

from spinemetrics.report.dashboard import cohort_dashboard
from spinemetrics.report.export import export_static
from spinemetrics.report.subject import subject_report

__all__ = ["subject_report", "cohort_dashboard", "export_static"]
