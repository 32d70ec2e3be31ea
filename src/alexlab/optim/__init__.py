"""Optimizers, parameter grouping, learning-rate schedules and batch-size arithmetic."""
