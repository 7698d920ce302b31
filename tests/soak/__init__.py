"""The soak test: both pools under concurrency 64 with every fault mixed in."""
