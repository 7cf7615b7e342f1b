"""The internal release dashboard: server-rendered pages (Jinja2), a little plain JavaScript, live updates (SSE).

`mount.mount_dashboard` puts it into the FastAPI application; its docstring says how to add a page.
"""
