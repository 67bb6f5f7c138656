"""Helpers the tests share: fakes, fixtures' builders, synthetic corpora."""
