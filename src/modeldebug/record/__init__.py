"""The run store: RunWriter appends during training, Record reads for rules and reports."""

from .run import Entity, Event, Record, Series
from .schema import SCHEMA_VERSION
from .writer import RunWriter

__all__ = ["Entity", "Event", "Record", "RunWriter", "SCHEMA_VERSION", "Series"]
