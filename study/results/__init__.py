"""Results: the Parquet schema (the contract with `analysis`), the sink, storage locations and `status`.
Nothing here imports torch or Ray at module level."""
