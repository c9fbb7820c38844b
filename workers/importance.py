"""Tasks for issue 7 (importance); to be filled."""
