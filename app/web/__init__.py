"""Server-rendered pages (Jinja2 through FastAPI) over the same services as the API."""
