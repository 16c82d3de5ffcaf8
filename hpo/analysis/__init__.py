"""Reading finished studies (imports nothing of the run machinery): ranking, reports, the Pareto front, plots, importance, tables, display, study info, exports, the dashboard."""
