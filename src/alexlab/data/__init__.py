"""Data: where samples come from (sources) and how they are loaded (torch or DALI)."""
