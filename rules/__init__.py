"""The rules engine: rule files, stream and scheduled evaluation, the alert lifecycle."""
