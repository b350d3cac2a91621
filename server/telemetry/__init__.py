"""What operators see of the orchestrator: traces (tracing.py), metrics (metrics.py), logs (logs.py)."""
