"""Code tables as YAML data (see README.md); loaded by adapter.tables."""
