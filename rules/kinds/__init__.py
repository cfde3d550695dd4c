"""The rule kinds. Each module holds one kind: its YAML fields (a pydantic model) and how it is
evaluated."""
