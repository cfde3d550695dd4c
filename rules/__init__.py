"""The rules engine: rule files, stream and scheduled evaluation, the alert lifecycle."""

from rules.loader import AnyRule, RuleLoadError, RuleSet, load_rules

__all__ = ["AnyRule", "RuleLoadError", "RuleSet", "load_rules"]
