"""Streamlit entry point: `streamlit run app.py` (or `ser app`). The app lives in ser_model/webapp.py."""

from ser_model.webapp import main

main()
