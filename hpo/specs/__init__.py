"""The study spec: its models and parsing, safe YAML, sampler/pruner options, the search space, W&B sweep files."""
