"""Tasks for the live.<model> (activation tests) queue (to be filled)."""
