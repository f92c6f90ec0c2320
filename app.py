"""Streamlit entry point: `streamlit run app.py` (or `ser app`). The app lives in ser_cli/webapp.py."""

from ser_cli.webapp import main

main()
