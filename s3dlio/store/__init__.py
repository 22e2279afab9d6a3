"""Stores: one bucket/container/root behind one interface, on the fast or portable engine."""

from .base import DeleteFailure, ObjectMeta, Store
from .registry import open_store

__all__ = ["DeleteFailure", "ObjectMeta", "Store", "open_store"]
