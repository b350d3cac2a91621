"""The live web view (`baton serve --web HOST:PORT`): executions, an execution's graph and timeline, the agents."""

from server.web._app import STATIC, WebOptions, WebView, make_app, start_web_view
from server.web._errors import HTTP_STATUS

__all__ = [
    # Starting and stopping the view.
    "WebOptions",
    "WebView",
    "start_web_view",
    # The app over a given stub (tests), the static files, the status table.
    "HTTP_STATUS",
    "STATIC",
    "make_app",
]
