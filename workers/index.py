"""Tasks for the index queue (to be filled)."""
