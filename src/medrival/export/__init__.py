"""A study store for other tools: tidy Parquet/JSON tables (``tables``) and MLflow runs (``mlflow_runs``)."""
