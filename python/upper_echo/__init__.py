"""upper-echo: the Python reference implementation of spec/PROTOCOL.md."""
from .transform import UppercaseTransducer, transform, uppercase_table

__all__ = ["UppercaseTransducer", "transform", "uppercase_table"]
