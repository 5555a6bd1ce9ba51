"""overtonlite: a CPU-first toolkit for measuring what alignment does to an LLM's output distribution.

It replicates, at laptop scale, Lake, Choi & Durrett, "From Distributional to Overton Pluralism:
Investigating Large Language Model Alignment" (arXiv 2406.17692).
"""

__version__ = "0.1.0"
