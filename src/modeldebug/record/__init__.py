"""The run store: RunWriter appends during training, Record reads for rules and reports."""

from .frames import Frame, Series
from .run import Entity, Event, Record
from .schema import SCHEMA_VERSION
from .writer import RunWriter

__all__ = ["SCHEMA_VERSION", "Entity", "Event", "Frame", "Record", "RunWriter", "Series"]
