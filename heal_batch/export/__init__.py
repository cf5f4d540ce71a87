"""heal-batch export: a stage's records (or the curriculum's sets) as parquet, a Hugging Face
DatasetDict or chat JSONL."""
