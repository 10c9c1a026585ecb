"""paperlib."""
