"""`python -m cluster.config > docs/CONFIG.md`: print the configuration reference."""

from cluster.config.reference import markdown_table

print(markdown_table(), end="")
