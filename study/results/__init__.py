"""The results writer: the Parquet sink (the contract it writes is wt_base.schema). Nothing here imports torch or
Ray at module level."""
