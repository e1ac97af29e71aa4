"""The ops console: a web application for people, over the services' documented HTTP APIs only."""
