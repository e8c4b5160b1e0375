"""Helpers shared by the tests: in-process SDK setups, samples, servers."""
