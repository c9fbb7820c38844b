"""Tasks for issue 7 (explain); to be filled."""
