"""cquin's own settings that are not policy (data-quality limits), as YAML validated by JSON Schema."""
