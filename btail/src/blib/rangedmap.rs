//! RangedMap and RangedKeySet: maps and sets over inclusive key ranges.
