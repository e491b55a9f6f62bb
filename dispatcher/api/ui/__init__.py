"""The web page: its routes (``routes``) and its static files (``static/``)."""
