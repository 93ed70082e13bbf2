"""Serving: helpers of the Streamlit app (upload safety, escaping)."""
