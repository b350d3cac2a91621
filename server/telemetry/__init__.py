"""What operators see of the orchestrator: traces (tracing.py)."""
