"""The base room: what both `study` (the writer) and `analysis` (the reader) rely on, and nothing heavier than
pyarrow: the user-error type (`errors`), the Parquet contract (`schema`), the tables that the contract and the
specs are generated from (`budgets`, `fields`), storage locations (`storage`) and the file names of a study
directory (`layout`). It imports neither `study` nor `analysis`, so every arrow points down into it."""
