"""Studies: the tuning protocol written once (`protocol`) and, in time, the papers' questions built on it."""
