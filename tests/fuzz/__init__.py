"""Fuzzing every RPC of both ports against a real in-process server (README: Fuzzing)."""
