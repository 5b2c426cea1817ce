"""`traductor translate-dataset`: translate a column of JSONL, CSV or Parquet files, locally or on
Ray Data, resumably. pyarrow, tqdm and ray are imported lazily (the dataset and ray extras)."""
