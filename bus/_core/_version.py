"""The version of the ``bus`` distribution, for every floor that reports it."""

VERSION = "0.1.0"
