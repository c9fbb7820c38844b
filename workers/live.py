"""Tasks for the live queue (to be filled)."""
