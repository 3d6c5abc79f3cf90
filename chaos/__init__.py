"""Chaos testing of the event bus: real processes, random SIGKILLs, strict accounting.

``python -m chaos --duration 120 --seed N`` (``make chaos``); see ``docs/chaos.md``.
"""
