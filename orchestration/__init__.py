"""Meterline: a usage-based billing warehouse on DuckDB, dbt and Dagster."""
