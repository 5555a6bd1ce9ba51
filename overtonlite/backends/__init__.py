"""Backends: one small interface for generators and one for embedders (see ``base``). Heavy imports are lazy."""
