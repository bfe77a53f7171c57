"""Tools for development, evaluation and benchmarks (not used on the production path)."""
