"""weak2strong: make a strong model better using only weaker models."""

__version__ = "0.1.0"
