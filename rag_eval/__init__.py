"""Evaluation harness: datasets, IR metrics (via ir_measures) and configuration runs."""
