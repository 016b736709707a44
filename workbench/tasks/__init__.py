"""Reasoning tasks and verifiers shared by the notebooks."""
