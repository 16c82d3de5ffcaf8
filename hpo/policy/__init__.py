"""What to try and what to stop: pruners, samplers, the pruners' read-only view, two-stage narrowing and its designs, finalists over seeds."""
