"""Adapters from warmline to other stacks; each needs its own extra installed."""
