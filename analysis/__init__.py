"""Analysis of a study's Parquet results: pandas + seaborn only (no torch, no Ray)."""
