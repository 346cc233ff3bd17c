"""The run summary's file name and format version: shared by the writer (a Lightning callback)
and the reader (`sslzoo report`, which must start without importing Lightning)."""

SUMMARY_FILE = "run_summary.json"
SUMMARY_FORMAT = 2  # 2: metric records keep their recent values and the median over them; "val_split"
