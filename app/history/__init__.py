"""Coverage history: a snapshot of every change that can move coverage, trends and changes."""
