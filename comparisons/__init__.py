"""Side-by-side comparisons of define-by-run (eager) and define-and-run (staticgraph)."""
