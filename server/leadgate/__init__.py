"""Leadgate: decides a sales lead's stage with versioned forward-chaining rules."""

__version__ = "0.1.0"
