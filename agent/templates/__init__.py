"""Static assets of the report (the inline stylesheet of report.html)."""
