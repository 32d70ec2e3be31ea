"""alexlab."""
