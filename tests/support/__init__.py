"""Helpers the tests share: the two drivers, Redis servers, scenarios, waiting."""
