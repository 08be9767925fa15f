"""Speech tasks: keyword spotting (Speech Commands) and spoken digits (FSDD)."""
