"""The engine: rulesets as data, compiled to set-based queries over the canonical dataset."""
