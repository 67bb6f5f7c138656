"""archive-encoders: find and fine-tune the best sentence encoder for search over archive.org texts."""

__version__ = "0.1.0"
