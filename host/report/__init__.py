"""The bundle's report: :mod:`.contract` owns ``report.json`` (no TensorFlow); :mod:`.render` makes
the table, ``report.md`` and (with :mod:`.plot`) ``report.png``."""

from .contract import REPORT_FORMAT, BoardRun, Report, VariantRecord, read_report, write_report_json

__all__ = ["REPORT_FORMAT", "BoardRun", "Report", "VariantRecord", "read_report", "write_report_json"]
