"""The ``ser`` command and the Streamlit app: the user-facing layer over ``ser_model`` and ``pipelines``."""
